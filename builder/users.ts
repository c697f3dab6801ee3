// Users and groups by name, from the image's own /etc/passwd and /etc/group.
import { readImageFile, type Layer, type Store } from '../layers/index.ts';
import { BuildError } from './errors.ts';

/** The rows of the image's /etc/passwd or /etc/group, split on ':' (none when the file is missing). */
async function idTable(store: Store, layers: Layer[], file: string): Promise<string[][]> {
  const content = await readImageFile(store, layers, file);
  return (content?.toString('utf8') ?? '').split('\n').filter(Boolean).map((entry) => entry.split(':'));
}

const isNumber = (text: string | undefined): boolean => /^\d+$/.test(text ?? '');

/** USER as Docker applies it: name or id, group by name or id, supplementary groups from /etc/group. */
export async function resolveUser(store: Store, layers: Layer[], spec: string): Promise<{ uid: number; gid: number; groups: number[] }> {
  const [user = '', group] = spec.split(':');
  const passwd = await idTable(store, layers, '/etc/passwd');
  const entry = passwd.find((fields) => fields[0] === user || (isNumber(user) && fields[2] === user));
  if (!entry && !isNumber(user)) throw new BuildError(`unable to find user ${user}: no matching entries in passwd file`);
  const uid = entry ? Number(entry[2]) : Number(user);
  const groups = await idTable(store, layers, '/etc/group');
  let gid = entry ? Number(entry[3]) : 0;
  if (group !== undefined && group !== '') {
    const found = groups.find((fields) => fields[0] === group || (isNumber(group) && fields[2] === group));
    if (!found && !isNumber(group)) throw new BuildError(`unable to find group ${group}: no matching entries in group file`);
    gid = found ? Number(found[2]) : Number(group);
  }
  const supplementary = entry ? groups.filter((fields) => (fields[3] ?? '').split(',').includes(entry[0]!)).map((fields) => Number(fields[2])) : [];
  return { uid, gid, groups: [...new Set([gid, ...supplementary])] };
}

/** `--chown=user[:group]`, numeric or by name from the image's /etc/passwd and /etc/group. */
export async function resolveOwner(store: Store, layers: Layer[], spec: string): Promise<{ uid: number; gid: number }> {
  const [user = '', group] = spec.split(':');
  /** The line of `name` in the image's passwd or group file: name, password, id, then (passwd) the primary group. */
  const lookup = async (file: string, name: string): Promise<string[]> => {
    const fields = (await idTable(store, layers, file)).find((line) => line[0] === name);
    if (!fields || !isNumber(fields[2])) throw new BuildError(`--chown=${spec}: no ${file === '/etc/passwd' ? 'user' : 'group'} named "${name}" in the image's ${file}`);
    return fields;
  };
  const passwd = isNumber(user) ? undefined : await lookup('/etc/passwd', user);
  const uid = Number(passwd ? passwd[2] : user);
  if (group !== undefined && group !== '') return { uid, gid: Number(isNumber(group) ? group : (await lookup('/etc/group', group))[2]) };
  // As BuildKit: a user named without a group gets its primary group; a number alone, gid = uid.
  const primary = passwd?.[3];
  return { uid, gid: primary !== undefined && isNumber(primary) ? Number(primary) : uid };
}
