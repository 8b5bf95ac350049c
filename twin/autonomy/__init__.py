"""The twin's own autonomy: command timelines and on-board rules, run after every step.

``runner`` drives both from the server; ``timeline`` and ``rules`` hold their state as
fleet arrays; ``checks`` validates their tables against the field and command catalogs;
``commands`` are the catalog entries that manage them at run time (docs/procedures.md).
"""
