"""The `monitor` command line: one module per command.

    main.py        the parser (from the COMMANDS list) and `main`
    command.py     what every command shares: ExitCode, UsageError, the --config option
    probe.py       monitor probe NAME            serve.py     monitor serve
    check.py       monitor check                 history.py   monitor events / status
    config.py      monitor config validate       webhook.py   monitor webhook verify
    demo.py        monitor demo (demo_loop.py is the demo itself)
    render.py      a probe result as text: the step table, TLS, diagnosis, receive side
    render_check.py  a check report as text
    terminal.py    terminal_safe: server text shown, never obeyed

One-line event summaries are `monitor.events.summary`, shared with the channels.
"""

from monitor.cli.command import ExitCode
from monitor.cli.main import main

__all__ = ["ExitCode", "main"]
