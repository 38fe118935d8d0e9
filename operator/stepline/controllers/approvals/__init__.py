"""Approvals: a person's decision on a run's approval step, as an object admission vouches for.

A watch of our own keeps every Approval, by the step it decides, on every replica (`watch`,
`index`, `memory`); every replica checks that the admission policies are in place (`verification`).
On the leader, the judge writes each Approval's Accepted condition once (`judging`, deciding
with `acceptance`), and a Recorded one wakes its run through `memory.on_decision`. The engine's
side asks `Runtime.approvals.decision_for()` what decides a waiting step.
"""
