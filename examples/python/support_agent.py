"""A support agent whose refunds wait for a person.

No LLM: a scripted planner works through a few tickets. Lookups run at once (the policy's
`auto` tier); refunds go through Countersign and wait for a reviewer, who may approve, change
the amount, or reject them with a reason; the agent tells the customer what happened.

    countersign serve &
    export COUNTERSIGN_TOKEN=$(countersign token create --role agent --name support-bot \\
        --owner olivia --db sqlite://countersign.db)
    pip install -e clients/python
    python examples/python/support_agent.py

and, in another terminal, as a reviewer: `countersign queue`, `countersign approve ID`,
`countersign modify ID --args '{...}'` or `countersign reject ID --reason "..."`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from countersign import Countersign, Denied, Expired, NotAllowed, Rejected, gated

CUSTOMERS = {
    "c_9": {"name": "Ada", "tier": "gold", "orders": {"A-1": 2500, "A-2": 40}},
    "c_4": {"name": "Grace", "tier": "basic", "orders": {"B-7": 180}},
}


@dataclass
class Ticket:
    id: str
    customer: str
    text: str
    order: str


TICKETS = [
    Ticket("T-1", "c_9", "I was charged twice for order A-1", "A-1"),
    Ticket("T-2", "c_4", "Order B-7 arrived broken", "B-7"),
]


def build_tools(gate: Countersign) -> tuple[Any, Any]:
    @gated(action="customer.get", gate=gate)
    def lookup_customer(customer: str) -> dict[str, Any]:
        return CUSTOMERS[customer]

    @gated(
        action="refund.create",
        gate=gate,
        reasoning=lambda args: f"ticket {args['ticket']}: {args['why']}",
        context=lambda args: {"customer": args["customer"]},
        # One refund per ticket and order, however often the agent restarts.
        idempotency_key=lambda args: f"refund/{args['ticket']}/{args['order']}",
    )
    def refund(ticket: str, customer: str, order: str, amount: int, why: str) -> str:
        # The payment provider would be called here, with the approved arguments.
        return f"refunded {amount} USD on {order}"

    return lookup_customer, refund


def plan(ticket: Ticket, customer: dict[str, Any]) -> dict[str, Any]:
    """The scripted planner: a full refund of the order the ticket names."""
    return {
        "ticket": ticket.id,
        "customer": ticket.customer,
        "order": ticket.order,
        "amount": customer["orders"][ticket.order],
        "why": ticket.text,
    }


def handle(ticket: Ticket, lookup_customer: Any, refund: Any) -> str:
    customer = lookup_customer(ticket.customer)
    step = plan(ticket, customer)
    try:
        return f"{ticket.id}: {refund(**step)}"
    except Rejected as no:
        return f"{ticket.id}: refund rejected by {no.reviewer}: {no.reason}"
    except Expired:
        return f"{ticket.id}: nobody decided in time; escalating to a human agent"
    except Denied as denied:
        return f"{ticket.id}: refunds of this kind are not allowed: {denied.reason}"
    except NotAllowed as other:
        return f"{ticket.id}: not refunded ({other})"


def main() -> int:
    with Countersign() as gate:
        lookup_customer, refund = build_tools(gate)
        for ticket in TICKETS:
            print(handle(ticket, lookup_customer, refund), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
