"""Notices to the team: Flock, Slack, Teams, a signed generic webhook and an e-mail digest (docs/review.md).

`formats` builds each channel's body from a `Notice` (pure: no I/O, no clock); `channels` posts it, each channel
retried on its own and reported, never raising into a sync; `settings` is the `[notify]` table of the config.
"""
