/**
 * sealfs as a library. The one-call API: encrypt()/decrypt() for buffers,
 * createEncryptStream()/createDecryptStream() for streams of any size. Both produce and
 * read the sealed-file format of docs/FORMAT.md, the same bytes the drive stores.
 */
export { encrypt, decrypt } from './crypto/buffer.js';
export { createEncryptStream, createDecryptStream, EncryptStream, DecryptStream } from './crypto/stream.js';
export type { ContentOptions } from './crypto/context.js';
export { FormatError, type FormatProblem } from './crypto/errors.js';
export { generateMasterKey, readKeyFile, writeNewKeyFile, formatKeyFile, KeyFileError, type KeyFileProblem } from './crypto/keyfile.js';
export { CIPHER_NAMES, type CipherName } from './crypto/ciphers.js';
export { BACKEND_NAMES, type BackendName, type AeadBackend, type ChunkRun } from './crypto/backend.js';
export { selectBackend, backendByName, BACKEND_ENV } from './crypto/backends/index.js';
export { SealedFile } from './crypto/sealedfile.js';
export { fdStore, MemoryStore, type ByteStore } from './crypto/store.js';
