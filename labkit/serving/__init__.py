"""Running MLServer from a notebook or a test: ``server`` (``ModelServer``), ``terminal`` (the
course text's commands from a cell: ``terminal("mlserver start <folder>")``), ``processes``
(groups, pid files, ports), ``supervisor`` (the process that stops MLServer when it hangs or its
kernel dies), ``packaging`` (build folders), ``prometheus``. Light: no torch.

Kept empty on purpose: the supervisor starts with every server and imports only what it needs.
"""
