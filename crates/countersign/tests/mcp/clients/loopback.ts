// Loaded with `node --import` before an MCP server that listens on every interface
// (server-everything's HTTP transports do): binds it to 127.0.0.1 instead, and reports the
// port it got (PORT=0 picks a free one) on stderr as "loopback: listening on 127.0.0.1:PORT".
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]): net.Server {
  if (typeof args[0] === "number" || typeof args[0] === "string") {
    const [port, ...rest] = args;
    const callback = rest.find((a) => typeof a === "function");
    return this.listen({ port: Number(port), host: "127.0.0.1" }, callback as () => void);
  }
  this.once("listening", () => {
    const address = this.address();
    if (address !== null && typeof address === "object") {
      process.stderr.write(`loopback: listening on 127.0.0.1:${address.port}\n`);
    }
  });
  return listen.apply(this, args as Parameters<typeof listen>);
};
