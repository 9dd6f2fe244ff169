"""Two versions of a small call-centre flow, as a team would ship them one after the other.

``callcenter_v1`` is what the workers ran yesterday; ``callcenter_v2`` is today's
deploy: Greeter is gone (Triage asks the name), Billing is renamed Payments, the
Context's ``account_id`` is renamed ``account`` and ``refund_limit`` is retyped from
units (float) to cents (int), and leaving Wrapup for Triage now needs a verified
caller. Checkpoints written by v1 in one process are resumed by v2 in another.
"""
