import type { Duplex } from 'node:stream';
import { KvmuxError, RpcCode, RpcError } from '../../util/errors.js';
import { keyNamesOnly, redactSecrets, summarizeParams } from '../auth/audit.js';
import { checkPassword, LOCAL_LOCKOUT_KEY, parseLogin } from '../auth/login.js';
import { targetOf } from '../auth/policy.js';
import { attachmentPool, guestShare, PoolShare } from './buffer-pool.js';
import type { ServerCore } from './core.js';
import {
  describeIssues,
  errorResponse,
  invalidRequest,
  okResponse,
  type RpcRequest,
  type RpcResponse,
  requestSchema,
  salvageId,
} from './envelope.js';
import { binaryHeader, jsonDepth, LineSplitter } from './framing.js';
import { BinaryReply, type CallContext, type Caller, type RpcMethod } from './method.js';
import { initialRate, type RateState, takeToken } from './rate.js';

const HIGH_WATER = 4;

/** `limited`: over the rate; answered -32029 if it carries an id, never handled. */
type Item =
  | { type: 'line'; line: Buffer; binary?: Buffer }
  | { type: 'overflow'; limit: number }
  | { type: 'limited'; line: Buffer };

/** An over-rate line this short is scanned for its id (to answer -32029); longer ones are dropped unread. */
const LIMITED_PARSE_BYTES = 1024;
const LEADING_ID = /^\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,15}|"[^"\\]{0,256}")/;

/** The id of a request that starts with it (after an optional jsonrpc member): a bounded regex, no parse. */
export function leadingId(line: Buffer): number | string | undefined {
  const m = LEADING_ID.exec(line.subarray(0, 320).toString('latin1'));
  if (!m) return undefined;
  const v = m[1]!;
  return v.startsWith('"') ? v.slice(1, -1) : Number(v);
}

/** One peer (local client or guest channel): framing, auth state, rate limit, ordered dispatch. */
export class Connection {
  private readonly splitter: LineSplitter;
  private readonly queue: Item[] = [];
  private pumping = false;
  private authed = false;
  private lastActivityMs: number;
  private rate: RateState;
  private bytes: RateState;
  private resumeTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly ctx: CallContext;
  private sessionEnders = new Set<() => void>();
  readonly closed: Promise<void>;
  /** Its bytes come through receive() from a reused read buffer, not as 'data' events. */
  readonly readsOwnBuffer: boolean;

  constructor(
    private readonly core: ServerCore,
    private readonly stream: Duplex,
    readonly caller: Caller,
    opts: { reusedChunks?: boolean } = {},
  ) {
    this.readsOwnBuffer = opts.reusedChunks ?? false;
    this.splitter = new LineSplitter(core.limits.maxLineBytes, {
      pool: attachmentPool,
      share: new PoolShare(undefined, caller.kind === 'guest' ? guestShare : null),
      reusedChunks: this.readsOwnBuffer,
    });
    this.lastActivityMs = core.now();
    this.rate = initialRate(core.limits.rate, core.now());
    this.bytes = initialRate(core.limits.bytes, core.now());
    this.ctx = {
      caller,
      signal: this.abort.signal,
      connection: new Map(),
      onSessionEnd: (fn) => void this.sessionEnders.add(fn),
    };
    this.closed = new Promise((resolve) => stream.once('close', () => resolve()));
    void this.closed.then(() => {
      clearTimeout(this.resumeTimer);
      this.releaseAttachments();
      this.endSession();
      this.abort.abort(new KvmuxError(`${this.who}: channel closed`));
    });
    // reusedChunks: the stream's owner reads into its own buffer and calls receive() instead
    if (!this.readsOwnBuffer) stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) =>
      core.log.debug({ from: this.who, err: err.message }, 'control channel error'),
    );
  }

  /**
   * The channel closed: the attachments of lines never answered, and any the splitter holds, go
   * back to the pool (the line being answered gives its own back when its call ends).
   */
  private releaseAttachments(): void {
    for (const item of this.queue) if (item.type === 'line' && item.binary) attachmentPool.give(item.binary);
    this.queue.length = 0;
    this.splitter.dispose();
  }

  get who(): string {
    return this.caller.kind === 'guest' ? this.caller.vm : 'local';
  }

  close(): void {
    this.stream.destroy();
  }

  /** Bytes read into a buffer its reader reuses after this call (see withOwnReadBuffer). */
  receive(chunk: Buffer): void {
    this.onData(chunk);
  }

  /** Where the next read may land in place: the rest of an attachment (see LineSplitter.readTarget). */
  readTarget(): Buffer | null {
    return this.splitter.readTarget();
  }

  /** Bytes that were read straight into an attachment's memory (no copy out of a read buffer). */
  bytesLandedInPlace = 0;

  /** `n` bytes were read straight into readTarget()'s memory: counted like any others. */
  landed(n: number): void {
    this.bytesLandedInPlace += n;
    this.spendBytes(n);
    this.splitter.landed(n);
  }

  /**
   * Rate limits apply here, before any line is parsed or even depth-scanned: a flooding guest costs
   * the splitter's indexOf and a token count per line, and its over-rate lines never reach the pump.
   */
  private onData(chunk: Buffer): void {
    this.spendBytes(chunk.length);
    for (const ev of this.splitter.push(chunk)) {
      if (this.takeToken()) {
        this.queue.push(ev);
        continue;
      }
      // over the rate: its attachment is never read
      if (ev.type === 'line' && ev.binary) attachmentPool.give(ev.binary);
      if (ev.type === 'line' && ev.line.length <= LIMITED_PARSE_BYTES)
        this.queue.push({ type: 'limited', line: ev.line });
    }
    if (this.queue.length >= HIGH_WATER) this.stream.pause();
    void this.pump();
  }

  /** Guest channels: past the byte budget, stop reading until it refills (the guest's writes block). */
  private spendBytes(n: number): void {
    if (this.caller.kind !== 'guest') return;
    const cfg = this.authed ? this.core.limits.bytes : this.core.limits.bytesBeforeLogin;
    const now = this.core.now();
    const refilled = Math.min(
      cfg.burst,
      this.bytes.tokens + ((now - this.bytes.atMs) / 1000) * cfg.perSecond,
    );
    this.bytes = { tokens: refilled - n, atMs: now };
    if (this.bytes.tokens >= 0 || this.resumeTimer) return;
    this.stream.pause();
    const waitMs = Math.ceil((-this.bytes.tokens / cfg.perSecond) * 1000);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (this.queue.length < HIGH_WATER && !this.stream.destroyed) this.stream.resume();
    }, waitMs);
  }

  /** The next queued item, none once the channel is destroyed (it stays queued for the close). */
  private next(): Item | undefined {
    return this.stream.destroyed ? undefined : this.queue.shift();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // destroyed: what is still queued (attachments too) is let go at close (releaseAttachments)
      for (let item = this.next(); item; item = this.next()) {
        const resp =
          item.type === 'line'
            ? await this.respond(item.line, item.binary)
            : item.type === 'limited'
              ? this.limited(item.line)
              : errorResponse(null, invalidRequest(`line longer than ${item.limit} bytes`));
        if (resp && isBinary(resp)) await this.roomForBulk();
        if (resp) this.send(resp);
        if (this.queue.length < HIGH_WATER && this.stream.isPaused() && !this.resumeTimer)
          this.stream.resume();
      }
    } finally {
      this.pumping = false;
    }
  }

  private send(resp: RpcResponse): void {
    if (this.stream.destroyed) return;
    let bulk = 0;
    if ('result' in resp && resp.result instanceof BinaryReply) {
      const { result, data } = resp.result;
      this.stream.write(binaryHeader(data.length));
      this.stream.write(data);
      bulk = data.length;
      resp = { ...resp, result: { ...result, binary: data.length } };
    }
    let text: string;
    try {
      text = JSON.stringify(resp);
    } catch {
      text = JSON.stringify(
        errorResponse(resp.id, new RpcError(RpcCode.internal, 'internal error: unserialisable result')),
      );
    }
    this.stream.write(`${text}\n`);
    // bulk bytes the peer asked for wait in roomForBulk instead; only the rest counts as not reading
    if (this.stream.writableLength - bulk > this.core.limits.maxWriteBacklog) {
      this.core.log.warn({ from: this.who }, 'control peer is not reading its replies; dropping it');
      this.stream.destroy();
    }
  }

  /**
   * Before a bulk reply (a download chunk): wait until the peer has read most of what is queued,
   * so a slow reader slows the transfer instead of growing memory; one that reads nothing for
   * a minute is dropped.
   */
  private async roomForBulk(): Promise<void> {
    const limit = this.core.limits.maxWriteBacklog / 2;
    while (!this.stream.destroyed && this.stream.writableLength > limit) {
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        new Promise<boolean>((r) => {
          const done = () => {
            this.stream.off('drain', done);
            this.stream.off('close', done);
            r(true);
          };
          this.stream.once('drain', done);
          this.stream.once('close', done);
        }),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), 60_000);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) {
        this.core.log.warn({ from: this.who }, 'control peer stopped reading a download; dropping it');
        this.stream.destroy();
      }
    }
  }

  /**
   * An over-rate line is never parsed: -32029 goes to a request whose id shows in its first bytes
   * (`{"jsonrpc":"2.0","id":7,…` as clients write them); every other line gets silence.
   */
  private limited(line: Buffer): RpcResponse | null {
    const id = leadingId(line);
    if (id === undefined) return null;
    return errorResponse(
      id,
      new RpcError(RpcCode.tooManyRequests, `${this.who}: too many requests; slow down`),
    );
  }

  /** A line within the rate (the token was taken on arrival). */
  private async respond(line: Buffer, binary?: Buffer): Promise<RpcResponse | null> {
    const req = this.request(line);
    if (!('method' in req)) {
      if (binary) attachmentPool.give(binary);
      return req;
    }
    const answer = this.answer(req, binary);
    if (!this.core.methods.get(req.method)?.background) return answer;
    // out of order: the pump goes on with the next line, the answer is sent once the job ends
    void answer.then((resp) => {
      if (resp) this.send(resp);
    });
    return null;
  }

  /** The request on `line`, or the error response when it is not one. */
  private request(line: Buffer): RpcRequest | RpcResponse {
    const { maxDepth } = this.core.limits;
    if (jsonDepth(line, maxDepth) > maxDepth) {
      return errorResponse(null, invalidRequest(`JSON nested deeper than ${maxDepth} levels`));
    }
    let raw: unknown;
    try {
      raw = JSON.parse(line.toString('utf8'));
    } catch {
      return errorResponse(null, new RpcError(RpcCode.parseError, 'parse error: line is not valid JSON'));
    }
    if (Array.isArray(raw)) {
      return errorResponse(null, invalidRequest('batch arrays are not supported; send one request per line'));
    }
    const env = requestSchema.safeParse(raw);
    if (!env.success) return errorResponse(salvageId(raw), invalidRequest(describeIssues(env.error)));
    return env.data;
  }

  private async answer(req: RpcRequest, binary?: Buffer): Promise<RpcResponse | null> {
    let claimed = false;
    const claimBinary = () => {
      claimed = true;
    };
    const ctx = binary ? { ...this.ctx, binary, claimBinary } : this.ctx;
    const outcome = await this.execute(req, ctx).then(
      (result) => ({ ok: true as const, result }),
      (err: unknown) => ({ ok: false as const, error: this.toRpcError(req, err) }),
    );
    // refused, failed or never read: the attachment's slab goes back to the pool for the next one
    if (binary && !claimed) attachmentPool.give(binary);
    this.auditCall(req, outcome.ok ? null : outcome.error);
    if (req.id === undefined) return null;
    return outcome.ok ? okResponse(req.id, outcome.result) : errorResponse(req.id, outcome.error);
  }

  private async execute(req: RpcRequest, ctx: CallContext): Promise<unknown> {
    const guest = this.caller.kind === 'guest';
    if (req.method === 'auth.login') return this.login(req.params);
    if (req.method === 'auth.logout') return this.logout();
    if (guest) this.checkSession();
    const method = this.core.methods.get(req.method);
    if (!method) {
      const name = req.method.length > 64 ? `${req.method.slice(0, 64)}…` : req.method;
      throw new RpcError(RpcCode.methodNotFound, `method "${name}" not found`);
    }
    // parsed first: the policy's target is the name the call would really act on
    const params = parseParams(method, req.params);
    if (this.caller.kind === 'guest') await this.authorize(this.caller.vm, req, params);
    if (method.bulk) this.core.onBulk?.();
    return method.handler(params, ctx);
  }

  /** Guest channels only: the local root socket is not rate-limited. */
  private takeToken(): boolean {
    if (this.caller.kind !== 'guest') return true;
    const step = takeToken(this.core.limits.rate, this.rate, this.core.now());
    this.rate = step.state;
    return step.allowed;
  }

  private logout(): { ok: true } {
    this.authed = false;
    this.endSession();
    return { ok: true };
  }

  /** Whatever the ended session held (open transfers) is let go. */
  private endSession(): void {
    const enders = [...this.sessionEnders];
    this.sessionEnders.clear();
    for (const fn of enders) {
      try {
        fn();
      } catch (err) {
        this.core.log.warn({ from: this.who, err }, 'session-end hook failed');
      }
    }
  }

  private checkSession(): void {
    const now = this.core.now();
    if (this.authed && now - this.lastActivityMs > this.core.limits.idleMs) {
      this.authed = false;
      this.endSession();
      throw new RpcError(RpcCode.unauthorized, 'session expired after idle time: call auth.login again');
    }
    if (!this.authed) throw new RpcError(RpcCode.unauthorized, 'not logged in: call auth.login first');
    this.lastActivityMs = now;
  }

  private async authorize(vm: string, req: RpcRequest, params: unknown): Promise<void> {
    const target = targetOf(params);
    const decision = this.core.policy.decide(vm, req.method, target);
    if (decision.action === 'allow') return;
    const on = target === null || target === vm ? '' : ` on "${target}"`;
    const forbidden = new RpcError(RpcCode.forbidden, `policy forbids ${vm} to call "${req.method}"${on}`);
    if (decision.action === 'deny') throw forbidden;
    if (!(await this.ask(vm, req.method, params))) throw forbidden;
  }

  private async ask(vm: string, method: string, params: unknown): Promise<boolean> {
    const confirm = this.core.confirm;
    if (!confirm) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.core.limits.confirmTimeoutMs);
    });
    try {
      const asked = confirm(vm, method, redactSecrets(params), this.abort.signal);
      return await Promise.race([asked, timeout]);
    } catch (err) {
      if (err instanceof RpcError) throw err;
      this.core.log.warn({ vm, method, err }, 'confirmation failed; denying');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async login(params: unknown): Promise<{ ok: true; as: string }> {
    const password = parseLogin(params);
    // The root socket needs no login for its calls, but a login it answers must be a real check:
    // the admin screen on the console relies on it to lock the host away from passers-by.
    if (this.caller.kind === 'local') {
      await checkPassword(this.core, LOCAL_LOCKOUT_KEY, password);
      return { ok: true, as: 'local' };
    }
    await checkPassword(this.core, this.caller.vm, password);
    this.authed = true;
    this.lastActivityMs = this.core.now();
    return { ok: true, as: this.caller.vm };
  }

  private toRpcError(req: RpcRequest, err: unknown): RpcError {
    if (err instanceof RpcError) return err;
    if (err instanceof KvmuxError) return new RpcError(err.rpcCode, err.message);
    this.core.log.error({ from: this.who, method: req.method, err }, 'control handler failed');
    return new RpcError(RpcCode.internal, `internal error in "${req.method}" (details in the host log)`);
  }

  private auditCall(req: RpcRequest, error: RpcError | null): void {
    const audit = this.core.audit;
    if (!audit || (this.caller.kind === 'local' && req.method.endsWith('.chunk'))) return;
    // before login a guest has earned no more than a capped, rate-limited line of key names
    const unauthenticated = this.caller.kind === 'guest' && !this.authed;
    void audit.append(
      {
        time: new Date().toISOString(),
        from: this.who,
        method: req.method,
        params: unauthenticated ? keyNamesOnly(req.params ?? {}) : summarizeParams(req.params ?? {}),
        outcome: error ? 'error' : 'ok',
        ...(error ? { code: error.code, message: error.message } : {}),
      },
      { unauthenticated },
    );
  }
}

const isBinary = (resp: RpcResponse) => 'result' in resp && resp.result instanceof BinaryReply;

function parseParams(method: RpcMethod, params: RpcRequest['params']): unknown {
  if (Array.isArray(params))
    throw new RpcError(RpcCode.invalidParams, 'invalid params: params must be an object');
  const parsed = method.params.safeParse(params ?? {});
  if (!parsed.success) {
    throw new RpcError(
      RpcCode.invalidParams,
      `invalid params for "${method.name}": ${describeIssues(parsed.error)}`,
    );
  }
  return parsed.data;
}
