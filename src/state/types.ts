/**
 * The state store contract behind the Dapr state API. Keys reaching a store are already
 * prefixed by the Dapr layer (keyPrefix rules); values are the JSON bytes the app sent.
 * Every failure is a CrossmeshError: CM_ERR_ETAG_MISMATCH, CM_ERR_ETAG_INVALID,
 * CM_ERR_STORE_UNAVAILABLE (backend down; nothing may be reported as saved unless it was).
 */

export type Concurrency = 'first-write' | 'last-write';
export type Consistency = 'strong' | 'eventual';

export interface StoredValue {
  /** The value's bytes (JSON text as the app sent it). */
  data: Buffer;
  etag: string;
  /** Unix ms when the value expires, when it has a TTL. */
  expiresAt?: number;
}

export interface SetRequest {
  key: string;
  data: Buffer;
  /** With last-write: ignored. With first-write: must equal the stored etag; absent = the key must not exist. */
  etag?: string;
  concurrency: Concurrency;
  consistency?: Consistency;
  /** >0 sets a TTL; -1 or undefined = no expiry (Dapr: ttlInSeconds metadata). */
  ttlSeconds?: number;
}

export interface DeleteRequest {
  key: string;
  etag?: string;
  concurrency: Concurrency;
  consistency?: Consistency;
}

export type TransactionOperation = ({ operation: 'upsert' } & SetRequest) | ({ operation: 'delete' } & DeleteRequest);

/** Dapr state query (alpha): filter / sort / page over JSON values. */
export interface QueryRequest {
  filter?: QueryFilter;
  sort?: { key: string; order?: 'ASC' | 'DESC' }[];
  page?: { limit?: number; token?: string };
}
export type QueryFilter =
  | { EQ: Record<string, unknown> }
  | { IN: Record<string, unknown[]> }
  | { AND: QueryFilter[] }
  | { OR: QueryFilter[] };

export interface QueryResult {
  results: { key: string; data: Buffer; etag: string }[];
  /** Continuation token when more results exist. */
  token?: string;
}

export interface StateStoreFeatures {
  etag: boolean;
  transactional: boolean;
  ttl: boolean;
  query: boolean;
}

export interface StateStore {
  readonly features: StateStoreFeatures;
  /** Connects / opens; throws CrossmeshError with what is wrong (bad metadata, unreachable backend). */
  init(): Promise<void>;
  get(key: string): Promise<StoredValue | undefined>;
  bulkGet(keys: string[]): Promise<(StoredValue | undefined)[]>;
  set(req: SetRequest): Promise<void>;
  delete(req: DeleteRequest): Promise<void>;
  /** All or nothing where the backend allows (sqlite: one SQL transaction; redis: MULTI/EXEC after etag checks; memory: checked then applied). */
  transact(ops: TransactionOperation[]): Promise<void>;
  /** Only when features.query; `keyPrefix` restricts results to keys starting with it. */
  query?(q: QueryRequest, keyPrefix: string): Promise<QueryResult>;
  close(): Promise<void>;
}

/** What a store factory gets from a Dapr Component (secrets already resolved). */
export interface StoreConfig {
  /** Component name (e.g. statestore). */
  name: string;
  /** Component metadata as name → value strings. */
  metadata: Record<string, string>;
  /** Directory for embedded stores' default files ($CROSSMESH_HOME/state). */
  dataDir: string;
}
