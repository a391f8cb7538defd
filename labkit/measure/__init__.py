"""Measuring a running server: the closed-loop load generator (``loadgen``), ``/metrics``
(``metrics``), the scaling lab and its panel (``panel``), concurrent callers judged one by
one (``callers``), the lab's committed benchmark record read back (``record``), how busy the
machine was meanwhile (``machine``)."""
