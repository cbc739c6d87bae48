"""A deterministic fault simulator: the real core, hub, store and workflow runner on a
virtual clock, with the Zendesk sandbox in process, driven from a seed (issue 11 item 6).

`python -m tests.sim --seed N` replays one seed; `python -m tests.sim --seeds 10000` runs many.
"""
