// Node 18 (Debian 12's nodejs) has WebCrypto but not yet as globalThis.crypto, which the
// browser modules use; imported first by every test file.
import { webcrypto } from "node:crypto";

if (!globalThis.crypto) globalThis.crypto = webcrypto;
