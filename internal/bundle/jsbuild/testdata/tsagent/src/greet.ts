export type Greeting = { text: string; loud: boolean };

export function greet(name: string, loud = false): Greeting {
  const text: string = `hello, ${name}`;
  return { text: loud ? text.toUpperCase() : text, loud };
}
