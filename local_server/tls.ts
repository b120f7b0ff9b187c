/**
 * The local server's TLS certificate: the operator's, or — for a first try
 * and for development — a self-signed one made with `openssl` in the data
 * folder, valid for the host names appliances use.
 *
 * @module
 */

/** A certificate and its key, PEM. */
export interface TlsPair {
  /** Certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
  /** Where the certificate is (appliances trust it as `<state>/ca.pem` when self-signed). */
  certFile: string;
  /** True when it was made here, self-signed. */
  selfSigned: boolean;
}

/**
 * Reads `certFile`/`keyFile`, or makes (once) a self-signed pair in `dir`
 * covering `hosts` (names or IP addresses).
 */
export async function loadOrMakeCertificate(options: {
  certFile: string | null;
  keyFile: string | null;
  dir: string;
  hosts: string[];
}): Promise<TlsPair> {
  if (options.certFile && options.keyFile) {
    return {
      cert: await Deno.readTextFile(options.certFile),
      key: await Deno.readTextFile(options.keyFile),
      certFile: options.certFile,
      selfSigned: false,
    };
  }
  const certFile = `${options.dir}/cert.pem`, keyFile = `${options.dir}/key.pem`;
  const read = async () => ({
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    certFile,
    selfSigned: true,
  });
  try {
    return await read();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(options.dir, { recursive: true, mode: 0o700 });
  const san = [...new Set(options.hosts)].map((h) => /^[0-9.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)
    .join(",");
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        keyFile,
        "-out",
        certFile,
        "-days",
        "3650",
        "-subj",
        "/CN=noc-local-component-server",
        "-addext",
        `subjectAltName=${san}`,
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new Error(
      `Cannot make a self-signed certificate (is openssl installed?): ${
        e instanceof Error ? e.message : e
      }; give --cert and --key instead`,
    );
  }
  if (!out.success) {
    throw new Error(
      `openssl could not make a certificate: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  await Deno.chmod(keyFile, 0o600);
  return await read();
}
