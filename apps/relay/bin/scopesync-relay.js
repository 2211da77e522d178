#!/usr/bin/env node
// The installed command: runs the built CLI (`npm run build` or `npm start` builds it).
import '../dist/cli.js';
