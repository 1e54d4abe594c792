/**
 * Request bodies captured from real kubectl binaries (a logging TLS proxy in front of a crossmesh
 * cluster, 2026-12-03): for each command, the protobuf body kubectl 1.33.1 sends and the JSON body
 * kubectl 1.31 sends for the same command (`-n t1`). Not hand-made: the decoder must turn the first
 * into the second.
 */
export interface CapturedBody {
  command: string;
  path: string;
  /** kubectl 1.33.1, Content-Type application/vnd.kubernetes.protobuf, base64. */
  protobuf: string;
  /** kubectl 1.31, Content-Type application/json. */
  json: string;
}

export const KUBECTL_BODIES: readonly CapturedBody[] = [
  {
    command: "kubectl create namespace t1",
    path: "/api/v1/namespaces",
    protobuf: "azhzAAoPCgJ2MRIJTmFtZXNwYWNlEhoKEgoCdDESABoAIgAqADIAOABCABIAGgIKABoAIgA=",
    json: "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"t1\",\"creationTimestamp\":null},\"spec\":{},\"status\":{}}\n",
  },
  {
    command: "kubectl create secret generic s --from-literal=k=v --from-literal=bin=héllo",
    path: "/api/v1/namespaces/t1/secrets",
    protobuf: "azhzAAoMCgJ2MRIGU2VjcmV0Ei4KEwoBcxIAGgJ0MSIAKgAyADgAQgASDQoDYmluEgZow6lsbG8SBgoBaxIBdhoAGgAiAA==",
    json: "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"s\",\"namespace\":\"t1\",\"creationTimestamp\":null},\"data\":{\"bin\":\"aMOpbGxv\",\"k\":\"dg==\"}}\n",
  },
  {
    command: "kubectl create serviceaccount sa1",
    path: "/api/v1/namespaces/t1/serviceaccounts",
    protobuf: "azhzAAoUCgJ2MRIOU2VydmljZUFjY291bnQSFwoVCgNzYTESABoCdDEiACoAMgA4AEIAGgAiAA==",
    json: "{\"kind\":\"ServiceAccount\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"sa1\",\"namespace\":\"t1\",\"creationTimestamp\":null}}\n",
  },
  {
    command: "kubectl create token sa1 --duration=1h",
    path: "/api/v1/namespaces/t1/serviceaccounts/sa1/token",
    protobuf: "azhzAAooChhhdXRoZW50aWNhdGlvbi5rOHMuaW8vdjESDFRva2VuUmVxdWVzdBIdChAKABIAGgAiACoAMgA4AEIAEgMgkBwaBAoAEgAaACIA",
    json: "{\"kind\":\"TokenRequest\",\"apiVersion\":\"authentication.k8s.io/v1\",\"metadata\":{\"creationTimestamp\":null},\"spec\":{\"audiences\":null,\"expirationSeconds\":3600,\"boundObjectRef\":null},\"status\":{\"token\":\"\",\"expirationTimestamp\":null}}\n",
  },
  {
    command: "kubectl create service clusterip web --tcp=80:8080",
    path: "/api/v1/namespaces/t1/services",
    protobuf: "azhzAAoNCgJ2MRIHU2VydmljZRJrCiEKA3dlYhIAGgJ0MSIAKgAyADgAQgBaCgoDYXBwEgN3ZWISQgobCgc4MC04MDgwEgNUQ1AYUCIHCAAQkD8aACgAEgoKA2FwcBIDd2ViGgAiCUNsdXN0ZXJJUDoAQgBSAFoAYABoABoCCgAaACIA",
    json: "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"web\",\"namespace\":\"t1\",\"creationTimestamp\":null,\"labels\":{\"app\":\"web\"}},\"spec\":{\"ports\":[{\"name\":\"80-8080\",\"protocol\":\"TCP\",\"port\":80,\"targetPort\":8080}],\"selector\":{\"app\":\"web\"},\"type\":\"ClusterIP\"},\"status\":{\"loadBalancer\":{}}}\n",
  },
  {
    command: "kubectl create token sa1 --audience=a1 --audience=a2 --bound-object-kind=Secret --bound-object-name=s --bound-object-uid=abc",
    path: "/api/v1/namespaces/t1/serviceaccounts/sa1/token",
    protobuf: "azhzAAooChhhdXRoZW50aWNhdGlvbi5rOHMuaW8vdjESDFRva2VuUmVxdWVzdBI4ChAKABIAGgAiACoAMgA4AEIAEh4KAmExCgJhMhoUCgZTZWNyZXQSAnYxGgFzIgNhYmMaBAoAEgAaACIA",
    json: "{\"kind\":\"TokenRequest\",\"apiVersion\":\"authentication.k8s.io/v1\",\"metadata\":{\"creationTimestamp\":null},\"spec\":{\"audiences\":[\"a1\",\"a2\"],\"expirationSeconds\":null,\"boundObjectRef\":{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"name\":\"s\",\"uid\":\"abc\"}},\"status\":{\"token\":\"\",\"expirationTimestamp\":null}}\n",
  },
  {
    command: "kubectl create service nodeport np --tcp=81:http",
    path: "/api/v1/namespaces/t1/services",
    protobuf: "azhzAAoNCgJ2MRIHU2VydmljZRJqCh8KAm5wEgAaAnQxIgAqADIAOABCAFoJCgNhcHASAm5wEkMKHgoHODEtaHR0cBIDVENQGFEiCggBEAAaBGh0dHAoABIJCgNhcHASAm5wGgAiCE5vZGVQb3J0OgBCAFIAWgBgAGgAGgIKABoAIgA=",
    json: "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"np\",\"namespace\":\"t1\",\"creationTimestamp\":null,\"labels\":{\"app\":\"np\"}},\"spec\":{\"ports\":[{\"name\":\"81-http\",\"protocol\":\"TCP\",\"port\":81,\"targetPort\":\"http\"}],\"selector\":{\"app\":\"np\"},\"type\":\"NodePort\"},\"status\":{\"loadBalancer\":{}}}\n",
  },
  {
    command: "kubectl create secret docker-registry reg --docker-server=r.example --docker-username=u --docker-password=p",
    path: "/api/v1/namespaces/t1/secrets",
    protobuf: "azhzAAoMCgJ2MRIGU2VjcmV0EpMBChUKA3JlZxIAGgJ0MSIAKgAyADgAQgASWgoRLmRvY2tlcmNvbmZpZ2pzb24SRXsiYXV0aHMiOnsici5leGFtcGxlIjp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicCIsImF1dGgiOiJkVHB3In19fRoea3ViZXJuZXRlcy5pby9kb2NrZXJjb25maWdqc29uGgAiAA==",
    json: "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"reg\",\"namespace\":\"t1\",\"creationTimestamp\":null},\"data\":{\".dockerconfigjson\":\"eyJhdXRocyI6eyJyLmV4YW1wbGUiOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwIiwiYXV0aCI6ImRUcHcifX19\"},\"type\":\"kubernetes.io/dockerconfigjson\"}\n",
  },
  {
    command: "kubectl create service externalname ext --external-name=a.example.com",
    path: "/api/v1/namespaces/t1/services",
    protobuf: "azhzAAoNCgJ2MRIHU2VydmljZRJeCiEKA2V4dBIAGgJ0MSIAKgAyADgAQgBaCgoDYXBwEgNleHQSNRIKCgNhcHASA2V4dBoAIgxFeHRlcm5hbE5hbWU6AEIAUg1hLmV4YW1wbGUuY29tWgBgAGgAGgIKABoAIgA=",
    json: "{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"ext\",\"namespace\":\"t1\",\"creationTimestamp\":null,\"labels\":{\"app\":\"ext\"}},\"spec\":{\"selector\":{\"app\":\"ext\"},\"type\":\"ExternalName\",\"externalName\":\"a.example.com\"},\"status\":{\"loadBalancer\":{}}}\n",
  },
];
