import { storageContract } from './storage-contract/contract.js';
import { diskFactory } from './storage-contract/engines.js';

storageContract('disk engine', diskFactory);
