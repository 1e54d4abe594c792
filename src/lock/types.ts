/**
 * The distributed lock contract behind the Dapr lock API (alpha; src/dapr/lock-api.ts), as
 * components-contrib's lock.Store: TryLock(resourceId, owner, expiry) → acquired or not;
 * Unlock(resourceId, owner) → a status. Keys reaching a store are already prefixed by the Dapr
 * layer (`lock||<appId>||<resourceId>` by default). A lock's owner is whatever string the app
 * sends; a lock nobody releases disappears when its expiry passes, so a holder that dies never
 * holds it forever. Store failures are CrossmeshErrors (CM_ERR_STORE_UNAVAILABLE, CM_ERR_CONFIG).
 */

/** components-contrib lock.Status / the API's UnlockResponse.Status. */
export const UNLOCK_STATUS = { SUCCESS: 0, LOCK_DOES_NOT_EXIST: 1, LOCK_BELONGS_TO_OTHERS: 2, INTERNAL_ERROR: 3 } as const;
export type UnlockStatus = (typeof UNLOCK_STATUS)[keyof typeof UNLOCK_STATUS];

export interface LockStore {
  init(): Promise<void>;
  /** Takes the lock when nobody holds it (or its holder's expiry passed); false when someone does (also the same owner). */
  tryLock(key: string, owner: string, expiryInSeconds: number): Promise<boolean>;
  unlock(key: string, owner: string): Promise<UnlockStatus>;
  close(): Promise<void>;
}

export interface LockStoreConfig {
  name: string;
  metadata: Record<string, string>;
  /** Directory of embedded stores' files ($CROSSMESH_HOME/state), as for state.sqlite. */
  dataDir: string;
}
