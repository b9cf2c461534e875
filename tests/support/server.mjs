// A tiny static file server for www/ on 127.0.0.1 (application/wasm for .wasm).
// Used by `npm start` (.ci/serve) and by the browser tests.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.xml': 'application/xml',
};

export const WWW = resolve(fileURLToPath(new URL('../../www', import.meta.url)));

/**
 * Serve `root` (default www/); `extra` maps URL paths to {type, body} for test
 * pages; `handle(req, res, url)`, when given, answers first (true: handled);
 * `headers` are added to every file answer.
 */
export function startServer({ root = WWW, port = 0, extra = {}, types = {}, handle, headers = {} } = {}) {
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (handle && (await handle(req, res, url))) return;
      if (extra[url.pathname]) {
        const { type, body } = extra[url.pathname];
        res.writeHead(200, { 'content-type': type });
        res.end(body);
        return;
      }
      let path = normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
      let file = join(root, path);
      if (!file.startsWith(root)) throw new Error('outside root');
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      const ext = extname(file);
      res.writeHead(200, { ...headers, 'content-type': types[ext] ?? TYPES[ext] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      if (res.headersSent) res.end();
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8080);
  const server = await startServer({ port });
  console.log(`backing-chain page: http://127.0.0.1:${server.address().port}/`);
}
