import { after } from 'node:test';
import { storageContract } from './storage-contract/contract.js';
import { jetstreamFactory, stopSharedCluster } from './storage-contract/jetstream-engine.js';

after(stopSharedCluster);
storageContract('jetstream engine', jetstreamFactory);
