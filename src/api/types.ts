/** Kubernetes-style object shapes shared by every kind. */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Decimal string of the store's revision counter at the last write. */
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  /** Bumped when anything but status/metadata changes. */
  generation?: number;
  deletionTimestamp?: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  /** Other top-level fields some kinds carry (Secret.data, Endpoints.subsets, Component.auth, Component.scopes ...). */
  [field: string]: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  object: T;
}
