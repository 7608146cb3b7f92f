"""RunConfig: the typed config.json reads every config written so far, writes it back unchanged, and refuses
a setting out of its range or choices wherever it is read (the command line, config.json, a card)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edge_runtime.model.card import load_card
from train.cli import CONFIG_FILE, prepare_run_dir
from train.config import RunConfig, card_config
from train.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

# config.json of a FER+ run with a transfer architecture, as python -m train writes it.
CURRENT = {
    "data": "/data/fer2013", "classes": ["happy", "neutral", "sad", "surprise"], "arch": "lite0", "name": "fer4",
    "epochs": 30, "batch_size": 64, "lr": 0.001, "weight_decay": 0.05, "label_smoothing": 0.1, "mixup": 0.2,
    "class_weight": "sqrt", "drop": ["duplicates", "conflicts", "leaked"], "val_fraction": 0.1,
    "split_method": "by-content", "seed": 3, "precision": "float32", "strategy": "default", "cpu_devices": 0,
    "init_from": None, "teachers": [], "teacher_weight": 0.0, "labels": "ferplus", "votes": None,
    "label_blend": 0.8, "select": "mean", "prior_taus": [0.0, 0.125], "guard": None, "guard_margin": 2.0,
    "command": "python -m train --data /data/fer2013 --arch lite0", "weights": "imagenet", "resolution": 96,
    "freeze_epochs": 2, "finetune_lr_factor": 0.1, "weights_source": {"weights": "imagenet", "package": "x"},
    "split_classes": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
}
# An early run's config: no label source, split method, mixup, teachers or guard yet, and a key since retired.
OLDER = {"data": "fer2013.csv", "classes": ["happy", "sad"], "arch": "edge", "name": "fer2", "epochs": 40,
         "batch_size": 128, "lr": 0.002, "weight_decay": 0.05, "label_smoothing": 0.1, "class_weight": "sqrt",
         "drop": ["duplicates"], "val_fraction": 0.1, "seed": 1, "precision": "float32", "strategy": "default",
         "command": "python -m train --data fer2013.csv", "retired_option": 7}


def test_a_current_config_is_written_back_byte_for_byte():
    config = RunConfig.from_dict(json.loads(json.dumps(CURRENT)))
    assert (config.arch, config.resolution, config.label_blend, config.split_classes[0]) == ("lite0", 96, 0.8, "angry")
    assert json.dumps(config.to_dict()) == json.dumps(CURRENT)


def test_an_older_config_reads_with_the_defaults_it_implied_and_keeps_its_keys():
    config = RunConfig.from_dict(OLDER)
    assert config.split_method == "shuffle", "runs before --split-method carved by a seeded shuffle"
    assert (config.labels, config.select, config.mixup, config.teachers, config.guard) == (
        "fer2013", "fer2013", 0.0, [], None)
    assert config.prior_taus == [0.0] and config.guard_margin == 2.0
    assert config.extra == {"retired_option": 7}
    assert json.dumps(config.to_dict()) == json.dumps(OLDER), "no default is written into an older config"


def test_resuming_an_older_run_with_more_epochs_records_only_what_changed(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps(OLDER))
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 12}))
    command = RunConfig.from_dict({**OLDER, "command": "python -m train --resume --epochs 50"})
    config = prepare_run_dir(tmp_path, command, resume=True, force=False, args_epochs=50)
    assert config.epochs == 50 and config.resumed_with == "python -m train --resume --epochs 50"
    written = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert written == {**OLDER, "epochs": 50, "resumed_with": "python -m train --resume --epochs 50",
                       "epochs_changed": [{"from": 40, "to": 50, "after_epoch": 12}]}
    assert list(written)[-2:] == ["resumed_with", "epochs_changed"]


def test_a_new_run_writes_its_config_as_given(tmp_path):
    config = prepare_run_dir(tmp_path / "run", RunConfig.from_dict(CURRENT), resume=False, force=False)
    assert json.loads((tmp_path / "run" / CONFIG_FILE).read_text()) == CURRENT and config.name == "fer4"


@pytest.mark.parametrize("change, message", [
    ({"lr": 0}, "--lr must be above 0 (got 0)"),
    ({"epochs": "40"}, "--epochs must be a whole number (got '40')"),
    ({"drop": ["typos"]}, "--drop must list distinct names of duplicates, conflicts, leaked"),
    ({"classes": ["happy", "contempt"]}, "--classes may hold contempt only with --labels ferplus"),
    ({"select": "best"}, "--select must be one of mean, ferplus, fer2013"),
    ({"prior_taus": [0.0, 2.5]}, "--prior-adjust must each be from 0 (off) to 2"),
    ({"teachers": ["t.keras"]}, "--teacher-weight must be in (0, 1] with --teacher, and 0 without (got 0.0)"),
    ({"teacher_targets": "cached"}, "--teacher-targets sets how teachers score faces: add --teacher MODEL.keras"),
    ({"guard": "g.keras"}, "--guard compares recall on the consensus faces, which need FER+ votes"),
    ({"freeze_epochs": 2}, "--freeze-epochs applies to --arch lite0|vgg16|resnet50|efficientnetb0 only"),
    ({"seed": True}, "--seed must be a whole number (got True)"),
    ({"weights_source": []}, "weights_source must be a JSON object or null"),
])
def test_every_setting_is_checked_with_one_line_naming_it_and_the_fix(change, message):
    with pytest.raises(UserError) as caught:
        RunConfig.from_dict({**OLDER, **change})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_resumed_runs_config_is_checked_and_the_error_names_the_file(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**CURRENT, "label_blend": 1.5}))
    command = RunConfig.from_dict({**CURRENT, "command": "python -m train --resume"})
    with pytest.raises(UserError) as caught:
        prepare_run_dir(tmp_path, command, resume=True, force=False)
    assert str(caught.value) == (f"{tmp_path / CONFIG_FILE}: label_blend must be between 0 and 1 (got 1.5); "
                                 "correct it there, or start a new run with --force")


def test_a_warm_starts_card_config_is_checked(tmp_path):
    from edge_runtime.model.card import write_card
    from tests.model_support import run_card
    from train.cli import warm_start_split

    source = tmp_path / "fer4.keras"
    source.write_bytes(b"model")
    labels = ("happy", "neutral", "sad", "surprise")
    write_card(replace(run_card(labels, {**CURRENT, "val_fraction": 0.1}), path=tmp_path / "fer4.json"))
    assert warm_start_split(str(source), ("happy", "sad"))["split_classes"] == CURRENT["split_classes"]
    write_card(replace(run_card(labels, {**CURRENT, "val_fraction": 1.0}), path=tmp_path / "fer4.json"))
    with pytest.raises(UserError) as caught:
        warm_start_split(str(source), ("happy", "sad"))
    assert str(caught.value) == (f"--init-from {source}: its card {tmp_path / 'fer4.json'}, training.config: "
                                 "val_fraction must be between 0 and 1 (got 1.0); retrain that model, or correct its "
                                 "card")


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "models").rglob("*.json"))
                                  if not p.name.endswith((".eval.json", ".data_report.json"))],
                         ids=lambda path: path.name)
def test_every_shipped_cards_training_config_is_valid(path):
    card = load_card(path)
    config = card_config(card, "--init-from")
    assert config is not None and json.dumps(config.to_dict()) == json.dumps(card.training_config)
