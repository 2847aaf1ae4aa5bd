// The VS Code language ids the server serves: the client's document selector, and (checked by a
// unit test) the extension's activation events, so it starts for these files and no others.
export const DOCUMENT_LANGUAGES: readonly string[] = [
  'python',
  'javascript',
  'javascriptreact',
  'typescript',
  'typescriptreact',
  'go',
  'rust',
  'java',
  'c',
  'cpp',
];
