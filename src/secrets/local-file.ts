/**
 * secretstores.local.file (components-contrib secretstores/local/file): a JSON file read once at
 * init. Metadata: `secretsFile` (required; a relative path resolves against the app's working
 * directory, as daprd opens it relative to its own, which `dapr run` shares with the app),
 * `nestedSeparator` (default ":"), `multiValued` (default false).
 *
 * Single-valued: the JSON is flattened, nested keys joined by the separator and array items by
 * their index (`{"db":{"pw":"x"},"l":["a"]}` → secrets `db:pw`, `l:0`), each secret `{name: value}`.
 * Multi-valued: each top-level string is a secret `{name: value}` and each top-level object a
 * secret whose keys are that object flattened; other top-level values are skipped, as in the
 * component. Scalars become their text (numbers and booleans as JSON writes them, null as "";
 * the component prints Go's %s of them, e.g. "%!s(float64=1)", which no one relies on).
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { CrossmeshError } from '../errors.js';
import type { SecretData, SecretStore, SecretStoreConfig } from './types.js';

function scalar(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Flattens `value` under `path` into `out` (the first value of a duplicate name is kept, as the component's visitor does). */
function flatten(value: unknown, path: string[], sep: string, out: Record<string, string>): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => flatten(v, [...path, String(i)], sep, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flatten(v, [...path, k], sep, out);
  } else {
    const key = path.join(sep);
    if (!Object.hasOwn(out, key)) out[key] = scalar(value);
  }
}

export class LocalFileSecretStore implements SecretStore {
  readonly features: readonly string[];
  readonly file: string;
  private readonly sep: string;
  private readonly multiValued: boolean;
  private secrets = new Map<string, SecretData>();

  constructor(private readonly config: SecretStoreConfig) {
    const md = config.metadata;
    const file = md.secretsFile;
    if (!file) throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${config.name}: missing local secrets file in metadata (set metadata secretsFile to a JSON file)`);
    this.file = isAbsolute(file) ? file : resolve(config.workingDir, file);
    this.sep = md.nestedSeparator || ':';
    const mv = (md.multiValued ?? '').toLowerCase();
    if (mv !== '' && !['true', 'false', '1', '0', 't', 'f'].includes(mv)) {
      throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${config.name}: metadata multiValued=${JSON.stringify(md.multiValued)} is invalid: expected "true" or "false"`);
    }
    this.multiValued = ['true', '1', 't'].includes(mv);
    this.features = this.multiValued ? ['MULTIPLE_KEY_VALUES_PER_SECRET'] : [];
  }

  async init(): Promise<void> {
    const name = this.config.name;
    let text: string;
    try {
      const st = statSync(this.file);
      if (!st.isFile()) throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${name}: secretsFile ${this.file} is not a file${st.isDirectory() ? ' (it is a directory)' : ''}; point metadata secretsFile at a JSON file`);
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if (err instanceof CrossmeshError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${name}: cannot read secretsFile ${this.file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}${this.file !== this.config.metadata.secretsFile ? ` (resolved against the app's working directory ${this.config.workingDir})` : ''}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${name}: secretsFile ${this.file} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new CrossmeshError('CM_ERR_CONFIG', `secret store ${name}: secretsFile ${this.file} must hold a JSON object`);
    }
    const secrets = new Map<string, SecretData>();
    if (this.multiValued) {
      for (const [k, v] of Object.entries(json)) {
        if (typeof v === 'string') secrets.set(k, { [k]: v });
        else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
          const inner: Record<string, string> = {};
          flatten(v, [], this.sep, inner);
          secrets.set(k, inner);
        }
      }
    } else {
      const flat: Record<string, string> = {};
      flatten(json, [], this.sep, flat);
      for (const [k, v] of Object.entries(flat)) secrets.set(k, { [k]: v });
    }
    this.secrets = secrets;
  }

  async get(name: string): Promise<SecretData> {
    const s = this.peek(name);
    // The component's wording.
    if (!s) throw new CrossmeshError('CM_ERR_NOT_FOUND', `secret ${name} not found`);
    return s;
  }

  async bulkGet(): Promise<Record<string, SecretData>> {
    const out: Record<string, SecretData> = {};
    for (const [k, v] of this.secrets) out[k] = { ...v };
    return out;
  }

  peek(name: string): SecretData | undefined {
    const s = this.secrets.get(name);
    return s ? { ...s } : undefined;
  }

  async close(): Promise<void> {
    this.secrets.clear();
  }
}
