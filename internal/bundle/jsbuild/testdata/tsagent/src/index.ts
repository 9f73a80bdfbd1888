import ms from "ms";
import { greet, type Greeting } from "./greet";

interface Answer {
  greeting: Greeting;
  twoMinutes: number;
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/boom") {
      fail("kaput");
    }
    const answer: Answer = { greeting: greet("typescript"), twoMinutes: ms("2 minutes") };
    return Response.json(answer);
  },
};

function fail(why: string): never {
  throw new Error(`agent failed: ${why}`);
}
