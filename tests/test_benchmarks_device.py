"""The CPU a benchmark ran on: its model and whether it has int8 dot-product instructions, from
/proc/cpuinfo (this machine's, and the texts of CPUs we do not have)."""

from __future__ import annotations

import platform

import pytest

from benchmarks.device import cpu_line, device_facts, int8_dot_product, read_cpuinfo

#: The flag lines of real CPUs, trimmed: a Raspberry Pi 4 (Cortex-A72, no dot product), a Pi 5
#: (Cortex-A76, asimddp), an x86 server without VNNI, one with AVX-512 VNNI and a client core with AVX-VNNI.
PI4 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
PI5 = ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
       "asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n")
X86_PLAIN = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma hypervisor\n"
X86_AVX512_VNNI = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n"
X86_AVX_VNNI = "processor\t: 0\nmodel name\t: 12th Gen Intel(R) Core(TM) i5-1235U\nflags\t\t: fpu avx2 avx_vnni\n"


@pytest.mark.parametrize("text, machine, found", [
    (PI4, "aarch64", []),
    (PI5, "aarch64", ["asimddp"]),
    (X86_PLAIN, "x86_64", []),
    (X86_AVX512_VNNI, "x86_64", ["avx512_vnni"]),
    (X86_AVX_VNNI, "AMD64", ["avx_vnni"]),
    ("", "x86_64", None),                              # no /proc/cpuinfo (macOS): unknown, not "none"
    ("flags\t: rv64imafdc\n", "riscv64", None),        # no known dot-product flag for the architecture
])
def test_int8_dot_product_is_read_from_the_cpu_flags(text, machine, found):
    assert int8_dot_product(text, machine) == found


def test_the_cpu_line_names_the_model_and_the_dot_product_or_its_absence():
    device = {"cpu_model": "Cortex-A72", "architecture": "aarch64", "cores": 4}
    assert cpu_line({**device, "int8_dot_product": []}) == (
        "CPU: Cortex-A72 (aarch64, 4 cores), no int8 dot product (SDOT (asimddp) absent)")
    assert cpu_line({**device, "cpu_model": "Cortex-A76", "int8_dot_product": ["asimddp"]}).endswith(
        "int8 dot product: SDOT (asimddp)")
    x86 = {"cpu_model": "AMD EPYC", "architecture": "x86_64", "cores": 2, "virtualized": True}
    assert cpu_line({**x86, "int8_dot_product": []}) == (
        "CPU: AMD EPYC (x86_64, 2 cores, virtual machine), no int8 dot product (AVX-512 VNNI or AVX-VNNI absent)")
    assert cpu_line(x86).endswith("int8 dot product: not recorded")    # results stored before it was read


def test_this_machine_is_described_from_its_own_cpuinfo():
    facts = device_facts()
    assert facts["int8_dot_product"] == int8_dot_product(read_cpuinfo(), platform.machine())
    if platform.machine() == "x86_64" and read_cpuinfo():
        flags = set(next(line for line in read_cpuinfo().splitlines() if line.startswith("flags")).split())
        assert ("avx512_vnni" in flags) == ("avx512_vnni" in facts["int8_dot_product"])
    assert cpu_line(facts).startswith(f"CPU: {facts['cpu_model']} ({platform.machine()}")
