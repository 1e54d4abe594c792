import { storeContract } from '../../test/support/store-contract.js';
import { MemoryStore } from './memory.js';

storeContract('memory', (opts) => {
  const store = new MemoryStore(opts);
  return { store, cleanup: () => store.close() };
});
