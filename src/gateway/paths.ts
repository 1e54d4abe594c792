/** The request-target check lives in the shared proxy core (every mesh hop applies it). */
export { isSafePath } from '../proxy/paths.js';
