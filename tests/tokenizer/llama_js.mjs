// llama-tokenizer-js (LLaMA-2's vocabulary as it ships in npm) for test-tokenizer.sh:
//   node llama_js.mjs vocab OUT.json   {"vocab": [piece by id], "merges": ["a b" by priority]}
//   node llama_js.mjs encode FILE...   one line of ids per file (UTF-8 text, no <s>, the
//                                      dummy prefix space as SentencePiece adds it)
import fs from 'node:fs';
import tok from 'llama-tokenizer-js';

const [mode, ...args] = process.argv.slice(2);
if (mode === 'vocab') {
  const merges = [...tok.merges.entries()].sort((a, b) => a[1] - b[1]).map(e => e[0]);
  fs.writeFileSync(args[0], JSON.stringify({ vocab: tok.vocabById, merges }));
} else if (mode === 'encode') {
  for (const f of args) {
    const text = fs.readFileSync(f, 'utf8');
    console.log((tok.encode(text, false, true) || []).join(' '));
  }
} else {
  console.error('usage: node llama_js.mjs vocab OUT.json | encode FILE...');
  process.exit(2);
}
