#!/usr/bin/env python3
"""Gates CI on the Autobahn|Testsuite report (wstest's own exit code says nothing about results).

Usage: gate.py SPEC INDEX OURS BASELINE
  SPEC      the fuzzing client or server spec that was run (its "cases" and "exclude-cases" are
            the selection)
  INDEX     wstest's report, reports/servers/index.json or reports/clients/index.json
  OURS      the agent gated: the echo server built through ws-channels, or the echo client
            built on its Client
  BASELINE  the agent it is compared with: a bare tokio-tungstenite echo (server or client),
            run in the same job

Each case has two verdicts, its behaviour and its closing behaviour. For OURS, each verdict:
  - OK passes;
  - NON-STRICT, WRONG CODE (a close code other than the preferred one), INFORMATIONAL and
    UNIMPLEMENTED pass only if BASELINE got the same verdict on the same case: such a verdict
    is what tungstenite does (ws-channels cannot change it), or what the case itself reports
    whatever the server does (INFORMATIONAL). One the baseline does not share fails;
  - FAILED, UNCLEAN, FAILED BY CLIENT, NO_CLOSE or anything else fails.
The run fails too if an agent is missing, if the two agents ran different cases, or if a case
pattern of the selection matched no case (an empty or truncated run passes nothing).
BASELINE's own failures are printed, not gated.

Prints a summary table, every case that is not OK, and a closing line
`autobahn: N passed, N failed` (cases of OURS). Exits 1 if any case of OURS fails.
"""
import collections
import fnmatch
import json
import sys

OK = "OK"
SHAREABLE = {"NON-STRICT", "WRONG CODE", "INFORMATIONAL", "UNIMPLEMENTED"}
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def summary_class(case):
    """The worst of a case's two verdicts, as one column of the table."""
    verdicts = {case["behavior"], case["behaviorClose"]}
    if verdicts <= {OK}:
        return "OK"
    if verdicts - {OK} - SHAREABLE:
        return "FAILED"
    for column in ["NON-STRICT", "UNIMPLEMENTED", "INFORMATIONAL"]:
        if column in verdicts or (column == "NON-STRICT" and "WRONG CODE" in verdicts):
            return column
    return "FAILED"


def judge(ours, baseline):
    """Why OURS fails this case, or None."""
    reasons = []
    for field, label in [("behavior", "behaviour"), ("behaviorClose", "close")]:
        verdict = ours[field]
        if verdict == OK:
            continue
        if verdict in SHAREABLE:
            theirs = baseline[field] if baseline else None
            if theirs != verdict:
                reasons.append(f"{label} {verdict}, baseline {theirs or 'did not run it'}")
        else:
            reasons.append(f"{label} {verdict}")
    return "; ".join(reasons) or None


def main(spec_path, index_path, ours_name, baseline_name):
    spec = json.load(open(spec_path))
    report = json.load(open(index_path))
    problems = []
    for agent in (ours_name, baseline_name):
        if not report.get(agent):
            problems.append(f"agent {agent} has no results in {index_path}")
    ours = report.get(ours_name, {})
    baseline = report.get(baseline_name, {})

    # The selection must have run, whole, for both agents.
    patterns, excluded = spec["cases"], spec.get("exclude-cases", [])
    for agent, cases in ((ours_name, ours), (baseline_name, baseline)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(c, pattern) for c in cases if c not in excluded):
                problems.append(f"{agent}: no case of the selection {pattern} was run")
    if ours and baseline and set(ours) != set(baseline):
        problems.append(f"the agents ran different cases: only {ours_name}: "
                        f"{sorted(set(ours) - set(baseline), key=case_key)}, only {baseline_name}: "
                        f"{sorted(set(baseline) - set(ours), key=case_key)}")

    # The table: one row per agent, each case counted once by its worst verdict.
    print(f"{'agent':<20} {'cases':>5} " + " ".join(f"{c:>13}" for c in COLUMNS) + f" {'time (s)':>9}")
    for agent, cases in ((ours_name, ours), (baseline_name, baseline)):
        tally = collections.Counter(summary_class(case) for case in cases.values())
        # A case whose handshake never completed has a meaningless duration: left out.
        seconds = sum(c["duration"] for c in cases.values() if c["duration"] < 3_600_000) / 1000
        print(f"{agent:<20} {len(cases):>5} " + " ".join(f"{tally[c]:>13}" for c in COLUMNS)
              + f" {seconds:>9.1f}")

    # Every case that is not plainly OK on either side, side by side.
    failed = []
    noteworthy = sorted(
        (c for c in set(ours) | set(baseline)
         if summary_class(ours.get(c, {"behavior": "-", "behaviorClose": "-"})) != "OK"
         or summary_class(baseline.get(c, {"behavior": "-", "behaviorClose": "-"})) != "OK"),
        key=case_key)
    if noteworthy:
        print(f"\n{'case':<9} {ours_name + ' (behaviour/close)':<36} {baseline_name + ' (behaviour/close)':<36} gate")
    for case_id in noteworthy:
        mine, theirs = ours.get(case_id), baseline.get(case_id)
        reason = judge(mine, theirs) if mine else "not run"
        if reason:
            failed.append((case_id, reason))
        show = lambda c: f"{c['behavior']}/{c['behaviorClose']}" if c else "-"
        verdict = "FAILED: " + reason if reason else "shared" if mine and summary_class(mine) != "OK" else "ours OK"
        print(f"{case_id:<9} {show(mine):<36} {show(theirs):<36} {verdict}")
    for case_id in sorted(ours, key=case_key):
        if case_id not in noteworthy:
            reason = judge(ours[case_id], baseline.get(case_id))
            if reason:
                failed.append((case_id, reason))

    timed = [item for item in ours.items() if item[1]["duration"] < 3_600_000]
    slowest = sorted(timed, key=lambda item: -item[1]["duration"])[:3]
    if slowest:
        print("\nslowest cases of " + ours_name + ": "
              + ", ".join(f"{c} {case['duration']} ms" for c, case in slowest))
    for problem in problems:
        print(f"error: {problem}")
    passed = len(ours) - len(failed)
    print(f"autobahn: {passed} passed, {len(failed)} failed")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
