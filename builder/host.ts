// What this host lets a build do, found once when the build starts.
import { idMapping } from '../userns-native/index.ts';
import { chooseIsolation, type Isolation, type IsolationMode } from './isolation.ts';

export interface Host {
  /** Root here (in hoist's user namespace, or real root): files can have any owner, and RUN can run. */
  root: boolean;
  /** The ids the user namespace maps: 'single' when only the user's own (no /etc/subuid range). */
  ids: 'host' | 'range' | 'single';
  /** Whether RUN may try overlay mounts (HOIST_NO_OVERLAY=1 says no); a refusal later turns them off. */
  overlay: boolean;
  /** How RUN steps are isolated (--isolation, else the first mode that works here). */
  isolation: Isolation;
}

export async function detectHost(isolation?: IsolationMode): Promise<Host> {
  return { root: process.getuid?.() === 0, ids: idMapping(), overlay: process.env.HOIST_NO_OVERLAY !== '1', isolation: await chooseIsolation(isolation) };
}
