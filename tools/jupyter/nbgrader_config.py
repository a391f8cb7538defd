# The students' Validate button: nbgrader's validate_assignment extension reads this file from
# JUPYTER_CONFIG_PATH (tools/jupyter) and runs the whole notebook again in a fresh kernel, as the
# student runs it, demonstrations included. nbgrader's own defaults stop a cell after 30 s and
# fail the whole validation when the kernel is silent for 4 s after a cell: notebook 04's
# measurements take minutes on a busy CPU, and on a shared hub a kernel can be silent that long,
# so a right notebook failed to validate ("Timeout waiting for IOPub output"). `make grade`
# writes its own course config, which nbgrader reads after this file: its cell bound wins there.
c = get_config()  # noqa: F821 (nbgrader defines it)
c.Execute.timeout = 900
# A kernel silent for a minute after its cell is stuck: validation still fails then (its outputs
# could be incomplete), with nbgrader's message.
c.Execute.iopub_timeout = 60
