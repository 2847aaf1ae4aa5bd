// Expands `~` and `${workspaceFolder}` in path settings, the way users write them in settings.json.
import * as os from 'node:os';
import * as path from 'node:path';

export function expandPath(value: string, workspaceFolder: string | undefined, home: string = os.homedir()): string {
  let result = value;
  if (workspaceFolder !== undefined) {
    result = result.split('${workspaceFolder}').join(workspaceFolder);
  }
  if (result === '~') {
    return home;
  }
  if (result.startsWith('~/')) {
    return path.join(home, result.slice(2));
  }
  return result;
}
