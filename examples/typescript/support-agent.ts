/**
 * A support agent whose refunds wait for a person (the TypeScript twin of
 * examples/python/support_agent.py).
 *
 * No LLM: a scripted planner works through a few tickets. Lookups run at once; refunds go
 * through Countersign and wait for a reviewer, who may approve, change the amount or reject
 * them with a reason; the agent tells the customer what happened.
 *
 *     countersign serve &
 *     export COUNTERSIGN_TOKEN=$(countersign token create --role agent --name support-bot --owner olivia --db sqlite://countersign.db)
 *     (cd clients/typescript && npm install && npm run build)
 *     cd examples/typescript && npm install && npm start
 */

import { Countersign, Expired, Denied, NotAllowed, Rejected, gated } from "countersign";

const CUSTOMERS: Record<string, { name: string; orders: Record<string, number> }> = {
  c_9: { name: "Ada", orders: { "A-1": 2500, "A-2": 40 } },
  c_4: { name: "Grace", orders: { "B-7": 180 } },
};

interface Ticket { id: string; customer: string; text: string; order: string }

const TICKETS: Ticket[] = [
  { id: "T-1", customer: "c_9", text: "I was charged twice for order A-1", order: "A-1" },
  { id: "T-2", customer: "c_4", text: "Order B-7 arrived broken", order: "B-7" },
];

type RefundArgs = { ticket: string; customer: string; order: string; amount: number; why: string };

const gate = new Countersign();

const lookupCustomer = gated({ action: "customer.get", gate }, async ({ customer }: { customer: string }) => {
  const found = CUSTOMERS[customer];
  if (!found) throw new Error(`no customer ${customer}`);
  return found;
});

const refund = gated(
  {
    action: "refund.create",
    gate,
    reasoning: (a: RefundArgs) => `ticket ${a.ticket}: ${a.why}`,
    context: (a: RefundArgs) => ({ customer: a.customer }),
    // One refund per ticket and order, however often the agent restarts.
    idempotencyKey: (a: RefundArgs) => `refund/${a.ticket}/${a.order}`,
  },
  // The payment provider would be called here, with the approved arguments.
  async ({ order, amount }: RefundArgs) => `refunded ${amount} USD on ${order}`,
);

/** The scripted planner: a full refund of the order the ticket names. */
function plan(ticket: Ticket, customer: { orders: Record<string, number> }): RefundArgs {
  return { ticket: ticket.id, customer: ticket.customer, order: ticket.order, amount: customer.orders[ticket.order] ?? 0, why: ticket.text };
}

async function handle(ticket: Ticket): Promise<string> {
  const customer = await lookupCustomer({ customer: ticket.customer });
  try {
    return `${ticket.id}: ${await refund(plan(ticket, customer))}`;
  } catch (error) {
    if (error instanceof Rejected) return `${ticket.id}: refund rejected by ${error.reviewer}: ${error.reason}`;
    if (error instanceof Expired) return `${ticket.id}: nobody decided in time; escalating to a human agent`;
    if (error instanceof Denied) return `${ticket.id}: refunds of this kind are not allowed: ${error.reason}`;
    if (error instanceof NotAllowed) return `${ticket.id}: not refunded (${error.message})`;
    throw error;
  }
}

for (const ticket of TICKETS) console.log(await handle(ticket));
