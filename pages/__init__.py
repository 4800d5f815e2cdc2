"""The subscriber's pages (sign up, confirm, manage, leave) and the operator's subscriber
admin: where subscriber records (`subscriptions`) and digests (`digest`) meet.

The direction is one way: `pages` uses `digest` and `subscriptions`; `digest` reads
`subscriptions`; `subscriptions` imports neither (`make lint` checks it).
"""
