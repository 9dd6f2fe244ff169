"""The four specialised agents a call centre is made of, as subclassable bases.

Subclass them in your flow (set ``backend``, change ``instructions`` or ``tier``)::

    class Triage(states.Triage):
        backend = my_backend
"""

from .backend import AccountBackend, Charge
from .billing import Billing
from .call_context import CallContext
from .escalation import Escalation
from .greeter import Greeter
from .triage import Triage

__all__ = ["AccountBackend", "Billing", "CallContext", "Charge", "Escalation", "Greeter", "Triage"]
