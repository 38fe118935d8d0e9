"""The `stepline` command's client side: start, list, follow, describe, draw, cancel and invoke
runs from a terminal (`stepline start|invoke|runs|describe|graph|cancel`, also as the kubectl
plugin `kubectl stepline`).

What a newcomer looks for, by module:

    inputs.py      reading a run's input (a file or stdin) as a JSON object: pure
    durations.py   durations and ages as people read them (`1.2s`, `3m05s`): pure
    timelines.py   a run as a step timeline (`render_timeline`): pure
    tables.py      runs as a kubectl-like table (`build_run_row`, `render_rows`): pure
    graphs.py      a workflow's steps and dependencies as text, mermaid or dot: pure
    following.py   list and watch WorkflowRuns through `kube.KubeApi` (reconnecting)
    starting.py    `stepline start`: create a run, follow it to its end
    listing.py     `stepline runs`: the table, then the rows that change
    describing.py  `stepline describe` and `stepline graph`: read, then render
    cancelling.py  `stepline cancel`: the merge patch of spec.cancel
    invoking.py    `stepline invoke`: the synchronous invoke over HTTP (httpx), its token

The renderers do no I/O and read the clock only through a `now` their caller passes, so unit
tests compare their text. `cli.py` parses arguments and calls one function per command; errors
are `terminal.errors`' (and `stepline.errors`' for the API server), mapped to exit codes there.
"""
