/**
 * A Hugging Face Hub on loopback, for tests: the endpoints that Python's huggingface_hub
 * (snapshot_download: repo_info, list_repo_tree, HEAD + GET of resolve URLs) and
 * @huggingface/hub (modelInfo, listFiles) call, serving repositories held in memory. It follows
 * the public Hub API's documented shapes (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size,
 * Range requests, 401 for a private repository without its token, 404 with X-Error-Code).
 * Writes: `preupload` (every file 'regular', i.e. inline in the commit) and `commit` (NDJSON:
 * a header, then `file` entries with base64 content), as @huggingface/hub's commit() sends them;
 * each commit gets a new 40-hex id and moves the branch.
 * Fault: `truncateOnce` cuts the first GET of a path in half and drops the connection.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  type: 'model' | 'dataset' | 'space';
  name: string;
  /** commit -> { path -> bytes } */
  commits: Record<string, Record<string, Uint8Array>>;
  refs: Record<string, string>;
  /** If set, every request must carry `Authorization: Bearer <token>` (writes always need it). */
  token?: string;
  /** Commits made through the commit endpoint, oldest first. */
  commitLog?: Array<{ id: string; summary: string }>;
  /** Reads need no token even though `token` is set (a public repository with a writer). */
  publicRead?: boolean;
}

export interface LoopbackHub {
  url: string;
  /** Every request line seen, with its Range header if any (never the Authorization header). */
  log: string[];
  truncateOnce: Set<string>;
  close(): Promise<void>;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Uint8Array) => createHash('sha1').update(`blob ${b.byteLength}\0`).update(b).digest('hex');
/** The Hub stores large and binary files with LFS; small text files in git. */
const isLfs = (path: string, b: Uint8Array) => path.endsWith('.safetensors') || b.byteLength > 10_000;

export async function startLoopbackHub(repos: HubRepo[]): Promise<LoopbackHub> {
  const log: string[] = [];
  const truncateOnce = new Set<string>();
  const find = (type: string, name: string) => repos.find((r) => r.type === type && r.name === name);

  let base = '';
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    log.push(`${req.method} ${path}${url.search}${req.headers.range ? ` range=${req.headers.range}` : ''}`);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const deny = (repo: HubRepo | undefined) => {
      if (!repo) {
        json(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
        return true;
      }
      if (repo.token && !repo.publicRead && req.headers.authorization !== `Bearer ${repo.token}`) {
        json(401, { error: 'Invalid credentials in Authorization header' }, { 'X-Error-Code': 'RepoNotFound' });
        return true;
      }
      return false;
    };
    const commitOf = (repo: HubRepo, rev: string) => (repo.commits[rev] ? rev : repo.refs[rev]);

    // POST /api/{models|datasets|spaces}/ORG/NAME/(preupload|commit)/BRANCH
    const w = /^\/api\/(models|datasets|spaces)\/([^/]+\/[^/]+)\/(preupload|commit)\/([^/]+)$/.exec(path);
    if (w && req.method === 'POST') {
      const repo = find(w[1].slice(0, -1), w[2]);
      if (!repo) return json(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      if (!repo.token || req.headers.authorization !== `Bearer ${repo.token}`) return json(401, { error: 'Invalid credentials in Authorization header' });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (w[3] === 'preupload') {
          const body = JSON.parse(text) as { files: Array<{ path: string }> };
          return json(200, { files: body.files.map((f) => ({ path: f.path, uploadMode: 'regular', shouldIgnore: false })) });
        }
        const parent = repo.refs[w[4]];
        const files: Record<string, Uint8Array> = { ...(parent ? repo.commits[parent] : {}) };
        let summary = '';
        for (const line of text.split('\n').filter(Boolean)) {
          const op = JSON.parse(line) as { key: string; value: { path?: string; content?: string; encoding?: string; summary?: string } };
          if (op.key === 'header') summary = op.value.summary ?? '';
          else if (op.key === 'file') files[op.value.path!] = new Uint8Array(Buffer.from(op.value.content!, 'base64'));
          else if (op.key === 'deletedFile') delete files[op.value.path!];
          else return json(400, { error: `unsupported commit operation ${op.key}` });
        }
        const id = createHash('sha1').update(`${parent ?? ''}\n${summary}\n${Object.keys(files).sort().join('\n')}\n${repo.commitLog?.length ?? 0}`).digest('hex');
        repo.commits[id] = files;
        repo.refs[w[4]] = id;
        (repo.commitLog ??= []).push({ id, summary });
        return json(200, { success: true, commitOid: id, commitUrl: `${base}/${w[1] === 'models' ? '' : w[1] + '/'}${repo.name}/commit/${id}` });
      });
      return;
    }

    // /api/{models|datasets}/ORG/NAME/(revision|tree)/REV[/sub]
    let m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (m && req.method === 'GET') {
      const repo = find(m[1] === 'models' ? 'model' : 'dataset', m[2]);
      if (deny(repo)) return;
      const commit = commitOf(repo!, m[4]);
      if (!commit) return json(404, { error: `Invalid rev id: ${m[4]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      const files = repo!.commits[commit];
      if (m[3] === 'revision') {
        return json(200, {
          _id: createHash('md5').update(repo!.name).digest('hex').slice(0, 24), id: repo!.name, modelId: repo!.name,
          sha: commit, private: !!repo!.token, disabled: false, gated: false, downloads: 0, likes: 0,
          lastModified: '2026-12-08T00:00:00.000Z', createdAt: '2026-12-08T00:00:00.000Z', tags: [],
          siblings: Object.keys(files).sort().map((rfilename) => ({ rfilename })),
        });
      }
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const p of Object.keys(files).sort()) {
        const b = files[p];
        const parts = p.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
        const e: Record<string, unknown> = { type: 'file', oid: isLfs(p, b) ? gitOid(new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(b)}\nsize ${b.byteLength}\n`)) : gitOid(b), size: b.byteLength, path: p };
        if (isLfs(p, b)) e.lfs = { oid: sha256(b), size: b.byteLength, pointerSize: 134 };
        entries.push(e);
      }
      for (const d of dirs) entries.push({ type: 'directory', oid: gitOid(new TextEncoder().encode(d)), size: 0, path: d });
      return json(200, entries);
    }

    // /[datasets/]ORG/NAME/resolve/REV/PATH
    m = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m && (req.method === 'GET' || req.method === 'HEAD')) {
      const repo = find(m[1] ? 'dataset' : 'model', m[2]);
      if (deny(repo)) return;
      const commit = commitOf(repo!, m[3]);
      if (!commit) return json(404, { error: `Invalid rev id: ${m[3]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      const body = repo!.commits[commit][m[4]];
      if (!body) return json(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const lfs = isLfs(m[4], body);
      const etag = lfs ? sha256(body) : gitOid(body);
      const headers: Record<string, string> = {
        'X-Repo-Commit': commit, ETag: `"${etag}"`, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream',
      };
      if (lfs) Object.assign(headers, { 'X-Linked-Etag': `"${etag}"`, 'X-Linked-Size': String(body.byteLength) });
      let start = 0;
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      if (range) start = Number(range[1]);
      if (start > body.byteLength) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.byteLength}` });
        return res.end();
      }
      const part = body.subarray(start);
      if (range) headers['Content-Range'] = `bytes ${start}-${body.byteLength - 1}/${body.byteLength}`;
      headers['Content-Length'] = String(part.byteLength);
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') return res.end();
      const key = `${repo!.name}/${m[4]}`;
      if (truncateOnce.has(key)) {
        truncateOnce.delete(key);
        res.write(part.subarray(0, part.byteLength >> 1), () => res.destroy());
        return;
      }
      return res.end(part);
    }
    json(404, { error: `not served by the loopback hub: ${req.method} ${path}` });
  };

  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    truncateOnce,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
