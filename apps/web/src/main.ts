import './styles.css';
import { registerServiceWorker } from './register-service-worker.ts';
import { startTour } from './tour-app.ts';

const root = document.getElementById('app');
if (!root) throw new Error('index.html has no #app element');
registerServiceWorker();
void startTour(root);
