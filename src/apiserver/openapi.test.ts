import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildOpenApiV2, buildOpenApiV3, definitionName, groupVersions, openApiDocuments } from './openapi.js';

describe('OpenAPI documents from the zod schemas', () => {
  it('names definitions as Kubernetes does, each with its group-version-kind', () => {
    assert.equal(definitionName('', 'v1', 'Service'), 'io.k8s.api.core.v1.Service');
    assert.equal(definitionName('coordination.k8s.io', 'v1', 'Lease'), 'io.k8s.api.coordination.v1.Lease');
    assert.equal(definitionName('flomesh.io', 'v1alpha1', 'ServiceExport'), 'io.flomesh.v1alpha1.ServiceExport');
    assert.equal(definitionName('multicluster.flomesh.io', 'v1alpha1', 'ServiceExport'), 'io.flomesh.multicluster.v1alpha1.ServiceExport');
    const v2 = buildOpenApiV2() as any;
    assert.deepEqual(v2.definitions['io.flomesh.v1alpha1.ServiceExport']['x-kubernetes-group-version-kind'], [{ group: 'flomesh.io', kind: 'ServiceExport', version: 'v1alpha1' }]);
    assert.ok(v2.definitions['io.dapr.v1alpha1.Component']);
  });

  it('every $ref resolves and every PATCH carries its GVK and fieldValidation (v2 and v3)', () => {
    const v2 = buildOpenApiV2() as any;
    const refs = JSON.stringify(v2).match(/"#\/definitions\/[^"]+"/g) ?? [];
    for (const r of refs) assert.ok(v2.definitions[r.slice(15, -1)], r);
    for (const gv of groupVersions()) {
      const v3 = buildOpenApiV3(gv) as any;
      for (const r of JSON.stringify(v3).match(/"#\/components\/schemas\/[^"]+"/g) ?? []) assert.ok(v3.components.schemas[r.slice(22, -1)], r);
      for (const [path, item] of Object.entries(v3.paths) as [string, any][]) {
        if (!item.patch) continue;
        assert.equal(item.patch['x-kubernetes-group-version-kind'].group, gv.group, path);
        assert.ok(item.patch.parameters.some((p: any) => p.name === 'fieldValidation'), path);
        assert.ok(v2.paths[path].patch.parameters.some((p: any) => p.name === 'fieldValidation'), path);
      }
    }
  });

  it('core lists carry the list-merge extensions; int-or-string is the named IntOrString in v2 and v3', () => {
    const v2 = buildOpenApiV2() as any;
    const ports = v2.definitions['io.k8s.api.core.v1.Service'].properties.spec.properties.ports;
    assert.equal(ports['x-kubernetes-patch-merge-key'], 'port');
    assert.equal(ports['x-kubernetes-patch-strategy'], 'merge');
    assert.equal(ports['x-kubernetes-list-type'], 'map');
    assert.deepEqual(ports['x-kubernetes-list-map-keys'], ['port', 'protocol']);
    const intOrString = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
    assert.equal(ports.items.properties.targetPort.$ref, `#/definitions/${intOrString}`);
    assert.deepEqual({ ...v2.definitions[intOrString], description: undefined }, { type: 'string', format: 'int-or-string', description: undefined });
    const core = buildOpenApiV3(groupVersions().find((g) => g.group === '')!) as any;
    const v3TargetPort = core.components.schemas['io.k8s.api.core.v1.Service'].properties.spec.properties.ports.items.properties.targetPort;
    assert.deepEqual(v3TargetPort.allOf, [{ $ref: `#/components/schemas/${intOrString}` }]);
    assert.equal(v3TargetPort['x-kubernetes-int-or-string'], undefined);
    assert.equal(core.components.schemas[intOrString].format, 'int-or-string');
    // SMP is offered for core kinds only.
    assert.ok(v2.paths['/api/v1/namespaces/{namespace}/services/{name}'].patch.consumes.includes('application/strategic-merge-patch+json'));
    assert.ok(!v2.paths['/apis/flomesh.io/v1alpha1/namespaces/{namespace}/serviceexports/{name}'].patch.consumes.includes('application/strategic-merge-patch+json'));
  });

  it('the v3 index points at every group version with its hash; v2 has a protobuf form', () => {
    const docs = openApiDocuments();
    const index = JSON.parse(docs.v3Index.toString()) as { paths: Record<string, { serverRelativeURL: string }> };
    assert.ok(index.paths['api/v1'].serverRelativeURL.startsWith('/openapi/v3/api/v1?hash='));
    assert.ok(index.paths['apis/flomesh.io/v1alpha1']);
    assert.ok(index.paths['apis/multicluster.flomesh.io/v1alpha1']);
    for (const [p, { serverRelativeURL }] of Object.entries(index.paths)) assert.ok(serverRelativeURL.endsWith(docs.v3.get(p)!.hash));
    // gnostic Document: field 1 "2.0" first.
    assert.deepEqual([...docs.v2Proto.subarray(0, 5)], [0x0a, 3, 0x32, 0x2e, 0x30]);
  });
});
