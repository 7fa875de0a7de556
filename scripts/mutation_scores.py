"""Mutation scores per file from mutmut's results, leaving out the survivors judged equivalent.

Reads `mutmut results --all true` and scripts/mutation-equivalent.txt (one mutant name per line, then
its reason; `#` starts a comment). A score is killed / (mutants - equivalent - not run); a timeout
counts as killed (the mutant made the tests hang, which the suite's timeout catches), and so does a
crash of the test process (mutmut's "segfault": a mutant that, say, grows a table without end). Exits 1 when a
listed equivalent was run and is no longer a survivor, or no longer exists (the list is stale: the
code or the tests moved), or when a file is below the target. A listed mutant a partial run did not
run (`scripts/mutation core`, a name pattern) says nothing either way.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

TARGET = 0.98
ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_LIST = ROOT / "scripts" / "mutation-equivalent.txt"

#: mutmut's statuses for a mutant that was not run.
_UNRUN = ("not checked", "no tests", "skipped")


def _equivalents() -> dict[str, str]:
    listed: dict[str, str] = {}
    for line in EQUIVALENT_LIST.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not text:
            continue
        name, _, reason = text.partition(" ")
        listed[name] = reason.strip()
    return listed


def _results() -> dict[str, str]:
    mutmut = ROOT / ".venv" / "bin" / "mutmut"
    out = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    results: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            results[name] = status
    return results


def _module(name: str) -> str:
    # flagsync.core.rule.x_verdict__mutmut_3, flagsync.logs.xǁClassǁmethod__mutmut_1
    head = name.split("__mutmut_", 1)[0]
    module, _, _ = head.rpartition(".x")
    return module


def main() -> int:
    results = _results()
    equivalent = _equivalents()
    stale = sorted(name for name in equivalent if results.get(name) not in {"survived", *_UNRUN})
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results.items():
        counts[_module(name)]["equivalent" if name in equivalent and status == "survived" else status] += 1
    print(f"{'file':<36} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'equiv.':>6} {'unrun':>6} {'score':>7}")
    failing = []
    for module in sorted(counts):
        c = counts[module]
        unrun = sum(c[status] for status in _UNRUN)
        killed = c["killed"] + c["timeout"] + c["segfault"]
        scored = killed + c["survived"] + c["suspicious"]
        score = killed / scored if scored else 1.0
        if score < TARGET:
            failing.append(module)
        path = module.replace(".", "/") + ".py"
        print(
            f"{path:<36} {sum(c.values()):>7} {c['killed']:>7} {c['timeout']:>7} {c['survived']:>8}"
            f" {c['equivalent']:>6} {unrun:>6} {score:>7.1%}"
        )
    if stale:
        print(f"\n{len(stale)} listed as equivalent but not (or no longer) surviving; update {EQUIVALENT_LIST.name}:")
        print("\n".join(f"  {name}: {results.get(name, 'no such mutant')}" for name in stale))
    if failing:
        print(f"\nbelow {TARGET:.0%}: {', '.join(failing)}  (mutmut results lists the survivors; mutmut show NAME shows one)")
    return 1 if stale or failing else 0


if __name__ == "__main__":
    sys.exit(main())
