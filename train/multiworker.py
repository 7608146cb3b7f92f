"""Keras 3 on ``tf.distribute.MultiWorkerMirroredStrategy``: a strategy ``fit`` can run on, the chief's
settings and training state shared with every worker, and a digest to compare the workers' weights."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import tensorflow as tf

from . import workers

# Settings each machine keeps its own value of (paths, local devices); the rest come from the chief.
LOCAL_SETTINGS = ("data", "votes", "init_from", "teachers", "guard", "weights", "command", "cpu_devices")


class KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's TensorFlow trainer passes it.

    Keras reduces a whole (x, y, weights) batch in one call when it builds the model in ``fit``, and
    each step's scalar metrics with ``axis=0``; across workers the stock ``reduce`` rejects both
    ("Attempt to convert a value (PerReplica...)", "Invalid reduction dimension 0 for input with 0
    dimensions"; keras-team/keras#20585). Here nested values are reduced one by one, scalars over
    replicas only.
    """

    def reduce(self, reduce_op, value, axis=None):
        reduce_one = super().reduce

        def one(v):
            rank = self.experimental_local_results(v)[0].shape.rank
            return reduce_one(reduce_op, v, None if rank == 0 else axis)

        return tf.nest.map_structure(one, value)


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several worker processes."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        strategy.extended._in_multi_worker_mode()


def broadcast_from_chief(strategy: tf.distribute.Strategy, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The chief's ``arrays`` on every worker, as float64 (a collective: every worker must call it).

    An all-reduce to which only replica 0 contributes; replica 0 is the chief's first device.
    """
    tensors = [tf.constant(np.asarray(a, np.float64)) for a in arrays]

    def keep_first(values):
        ctx = tf.distribute.get_replica_context()
        first = tf.equal(ctx.replica_id_in_sync_group, 0)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.where(first, t, tf.zeros_like(t)) for t in values])

    results = tf.function(lambda values: strategy.run(keep_first, args=(values,)))(tensors)
    return [strategy.experimental_local_results(r)[0].numpy() for r in results]


def share_config(strategy: tf.distribute.Strategy, config: dict) -> dict:
    """Every worker trains with the chief's settings (on ``--resume``, its stored config.json); each keeps
    its own paths (:data:`LOCAL_SETTINGS`)."""
    if not in_multi_worker_mode(strategy):
        return config
    chief = workers.is_chief()
    blob = np.frombuffer(json.dumps(config).encode(), np.uint8) if chief else np.zeros(0, np.uint8)
    (length,) = broadcast_from_chief(strategy, [np.array(len(blob))])
    padded = np.zeros(int(length), np.float64)
    if chief:
        padded[:] = blob
    (shared,) = broadcast_from_chief(strategy, [padded])
    return {**json.loads(shared.astype(np.uint8).tobytes()), **{k: config[k] for k in LOCAL_SETTINGS if k in config}}


class StartFromChief(keras.callbacks.Callback):
    """When ``fit`` starts, every worker takes the chief's weights, optimizer state and first epoch.

    Put it right after ``BackupAndRestore``: on ``--resume`` only the chief holds the checkpoint
    (the other workers' checkpoints went to scratch directories), so the others start from its state.
    """

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        if not in_multi_worker_mode(strategy):
            return
        variables = [*self.model.weights, *self.model.optimizer.variables]
        values = broadcast_from_chief(strategy, [np.asarray(v) for v in variables]
                                      + [np.array(self.model._initial_epoch or 0)])
        for variable, value in zip(variables, values, strict=False):
            variable.assign(value.astype(variable.dtype))
        self.model._initial_epoch = int(values[-1]) or None


class AverageMovingStatistics(keras.callbacks.Callback):
    """At each epoch's end, every replica's non-trainable weights (BatchNorm moving statistics) become
    their mean over all replicas.

    Keras 3 creates them with aggregation "none", so each replica updates its own copy from its own
    share of each batch and the workers drift apart. A moving average is linear in its updates, so
    averaging once per epoch equals averaging at every step. Put it first: validation and
    checkpoints then see the averaged statistics.
    """

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        self._average = None
        variables = self.model.non_trainable_weights
        if strategy.num_replicas_in_sync < 2 or not variables:
            return

        def average():
            ctx = tf.distribute.get_replica_context()
            means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in variables])
            for variable, mean in zip(variables, means, strict=True):
                variable.assign(mean)

        self._average = tf.function(lambda: strategy.run(average))

    def on_epoch_end(self, epoch, logs=None):
        if self._average is not None:
            self._average()


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights, in order: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()
