import { storageContract } from './storage-contract/contract.js';
import { memoryFactory } from './storage-contract/engines.js';

storageContract('memory engine', memoryFactory);
