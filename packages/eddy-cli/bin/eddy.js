#!/usr/bin/env node
// The CLI lives in the repository root (bin/eddy.js); this workspace only puts it on node_modules/.bin.
import '../../../bin/eddy.js';
