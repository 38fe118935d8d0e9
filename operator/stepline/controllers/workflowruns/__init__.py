"""WorkflowRuns: a watch of our own feeds every run to the supervisor (`watch`); the supervisor
keeps one task per unfinished run (`supervisor`), which drives the run through the engine and
writes its status (`runner`). Finished runs are kept or deleted by their Workflow's retention
policy, and their durations give the Workflow's statistics and predictions (`history`,
`retention`, `statistics`, `prediction`).
"""
