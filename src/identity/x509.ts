/**
 * The one adapter to @peculiar/x509 (certificate and CSR building and parsing over node's
 * WebCrypto): every identity module imports the library from here, so its two set-up steps
 * happen once and before first use.
 *
 * - @peculiar/x509 2.x resolves its algorithm providers through tsyringe, which needs the
 *   `Reflect.getMetadata` polyfill loaded before it (its README: "Reflect Polyfill Required").
 *   ES modules evaluate their imports in order, so `reflect-metadata` is imported first here.
 * - Its crypto provider is set to node:crypto's WebCrypto explicitly instead of relying on a
 *   global `crypto` lookup.
 *
 * Keys are ECDSA P-256 throughout (the choice: small keys and signatures, fast TLS 1.3
 * handshakes, supported by every TLS stack).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { CrossmeshError, type ErrorCode } from '../errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

/** Key generation, import and signing parameters (ECDSA P-256 with SHA-256). */
export const EC_P256: EcKeyGenParams & EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/**
 * A new P-256 key pair. Extractable because node:tls takes the private key as PEM; the key
 * stays in the process that generated it.
 */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS #8 PEM (`BEGIN PRIVATE KEY`) of a private key, the form node:tls and `loadCa` read. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/**
 * Imports a PEM private key (PKCS #8, or SEC1 `BEGIN EC PRIVATE KEY` as openssl writes it) for
 * signing. Only P-256 is accepted: everything this mesh issues is verified as P-256.
 */
export async function importSigningKey(pem: string, code: ErrorCode, what: string): Promise<CryptoKey> {
  let keyObject;
  try {
    keyObject = createPrivateKey(pem);
  } catch (err) {
    throw new CrossmeshError(code, `${what}: the private key is not a readable PEM key`, { cause: err });
  }
  if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = keyObject.asymmetricKeyType === 'ec' ? `EC ${keyObject.asymmetricKeyDetails?.namedCurve}` : String(keyObject.asymmetricKeyType);
    throw new CrossmeshError(code, `${what}: the private key is ${kind}, crossmesh needs ECDSA P-256`);
  }
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
}

/** Parses one PEM/DER certificate, or throws `code` with `what` in the message. */
export function parseCertificate(data: string | BufferSource, code: ErrorCode, what: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(data);
  } catch (err) {
    throw new CrossmeshError(code, `${what}: not a readable X.509 certificate`, { cause: err });
  }
}

/** Every certificate of a PEM bundle, in order (empty input → CA/CERT error from the caller's `code`). */
export function parseCertificateBundle(pem: string, code: ErrorCode, what: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CrossmeshError(code, `${what}: no PEM certificate found`);
  return blocks.map((b, i) => parseCertificate(b, code, `${what} (certificate ${i + 1})`));
}

/** The URI names of a certificate's subjectAltName extension (`[]` without one). */
export function uriSans(cert: x509.X509Certificate | x509.Pkcs10CertificateRequest): string[] {
  return sanNames(cert)
    .filter((n) => n.type === 'url')
    .map((n) => n.value);
}

/** Every name of the subjectAltName extension (`[]` without one). */
export function sanNames(cert: x509.X509Certificate | x509.Pkcs10CertificateRequest): { type: string; value: string }[] {
  // Extensions parse into their classes through the library's ExtensionFactory; a CSR's
  // extensions (from its extensionRequest attribute) do too.
  const sans = cert.extensions.filter((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  return sans.flatMap((san) => san.names.items.map((n) => ({ type: n.type, value: n.value })));
}

/** True if the certificate says it is a CA (basicConstraints cA). */
export function isCaCertificate(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  return bc?.ca === true;
}

/** True if keyUsage allows signing certificates. */
export function canSignCertificates(cert: x509.X509Certificate): boolean {
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  return ku !== null && (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}
