"""WorkflowSchedules: runs of a Workflow on a cron schedule, as CronJob's Jobs.

kopf's event handler keeps every schedule in memory (`handlers`, `memory`); a watch of our own
keeps the runs each one started (`runwatch`, `runindex`). On the leader, the scheduler holds one
timer per schedule (`scheduler`, `alarms`) and reconciles a schedule when it changes, when a run
of it starts or finishes, and when its time comes (`reconciler`): it decides (`decisions`, over
the cron times of `timing`, croniter behind three functions), creates the run (`manifests`),
prunes the history and writes the status (`status`).
"""
