/** Defaults the CLI's option definitions show (kept apart so `--help` loads no command module). */
export const DEFAULT_CLUSTERS = ['control-plane', 'cluster-1', 'cluster-2', 'cluster-3'];
export const CONTROL_PLANE = 'control-plane';
