-- codemlm for Neovim: starts the codemlm language server for supported filetypes and adds
-- commands for its search, fill-selection and reindex features.
--
-- Works on Neovim 0.7 (vim.lsp.start_client + vim.lsp.buf_attach_client from a FileType
-- autocommand) and on current releases (vim.lsp.start, which reuses a client per root).
--
--   require("codemlm").setup({
--     cmd = { "/path/to/venv/bin/python", "-m", "lsp_server" },   -- or { "codemlm-lsp" }
--     filetypes = { "python", "go" },                              -- default: every supported one
--     settings = { modelDir = "~/models/codemlm-small", maxCandidates = 5 },
--     keymaps = { fill_selection = "<leader>cf" },                 -- false: no keymaps
--     search_ui = "quickfix",                                      -- or "select" (vim.ui.select)
--   })

local M = {}

local SERVER_NAME = "codemlm"
-- codemlm is installed from its repository, not from a package index (a name there could be
-- anyone's): this is the one line the plugin gives as the fix.
local INSTALL_HINT = "Install it from a clone of the codemlm repository: "
  .. "bash scripts/setup-env.sh there and use its .venv/bin/python, "
  .. "or python3 -m pip install -e /path/to/codemlm."

M.defaults = {
  cmd = { "python3", "-m", "lsp_server" },
  filetypes = {
    "python",
    "javascript",
    "javascriptreact",
    "typescript",
    "typescriptreact",
    "go",
    "rust",
    "java",
    "c",
    "cpp",
  },
  -- The `codemlm` settings section of docs/INTERFACES.md (modelDir, completion, inlineCompletion,
  -- maxCandidates, indexPath, languages). Sent as initializationOptions and didChangeConfiguration.
  settings = {},
  root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml", "pom.xml", "Makefile" },
  keymaps = { fill_selection = "<leader>cf" },
  search_ui = "quickfix",
  search_results = 20,
  -- Milliseconds :CodemlmSearch and :CodemlmFillSelection wait for the server when called
  -- synchronously (sync = true); the default is asynchronous.
  timeout_ms = 10000,
}

M.config = vim.deepcopy(M.defaults)
-- root_dir -> client id (Neovim 0.7 path; vim.lsp.start keeps its own table).
local clients_by_root = {}
-- The last `codemlm/status` notification: { state = "indexing"|"ready"|"no-model", message = "..." }.
M.status = nil

local function notify(message, level)
  vim.notify("codemlm: " .. message, level or vim.log.levels.INFO)
end

local function has(feature)
  return vim.fn.has(feature) == 1
end

-- client:request on 0.11+ (the dot form is deprecated there), client.request before.
local function request(client, method, params, handler, bufnr)
  if has("nvim-0.11") then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function notify_server(client, method, params)
  if has("nvim-0.11") then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function dirname(path)
  return vim.fn.fnamemodify(path, ":h")
end

-- The nearest ancestor of `path` holding one of the root markers, else the file's directory.
-- (vim.fs.find only exists from 0.8 on.)
function M.find_root(path, markers)
  local dir = dirname(vim.fn.fnamemodify(path, ":p"))
  local start = dir
  while true do
    for _, marker in ipairs(markers) do
      local candidate = dir .. "/" .. marker
      if vim.fn.isdirectory(candidate) == 1 or vim.fn.filereadable(candidate) == 1 then
        return dir
      end
    end
    local parent = dirname(dir)
    if parent == dir then
      return start
    end
    dir = parent
  end
end

-- Lua has one table type, and Neovim encodes an empty table as a JSON array: the default
-- `settings = {}` reached the server as `"codemlm": []`, which it rejects ("must be an object").
-- Every settings value the server reads is an object except `languages`, a list of names: send
-- each empty table as {} (vim.empty_dict()) and leave lists alone.
local LIST_SETTINGS = { languages = true }

local function as_settings_object(value, key)
  if type(value) ~= "table" or LIST_SETTINGS[key] or value[1] ~= nil then
    return value
  end
  if next(value) == nil then
    return vim.empty_dict()
  end
  local object = {}
  for k, v in pairs(value) do
    object[k] = as_settings_object(v, k)
  end
  return object
end

-- The settings object sent as initializationOptions and didChangeConfiguration, and answered
-- to workspace/configuration: { codemlm = <settings> }.
function M.settings_section()
  return { codemlm = as_settings_object(M.config.settings or {}, "codemlm") }
end

local function settings_section()
  return M.settings_section()
end

local function on_status(_, result)
  if type(result) == "table" and type(result.state) == "string" then
    M.status = { state = result.state, message = result.message or "" }
    if result.state == "no-model" then
      notify("no model: " .. (result.message or "") .. " (set settings.modelDir or $CODEMLM_MODEL)", vim.log.levels.WARN)
    end
    vim.api.nvim_exec_autocmds("User", { pattern = "CodemlmStatus", modeline = false })
  end
end

local function client_config(root_dir)
  return {
    name = SERVER_NAME,
    cmd = M.config.cmd,
    root_dir = root_dir,
    workspace_folders = { { uri = vim.uri_from_fname(root_dir), name = vim.fn.fnamemodify(root_dir, ":t") } },
    init_options = settings_section(),
    settings = settings_section(),
    handlers = { ["codemlm/status"] = on_status },
    on_init = function(client)
      -- Pull-style clients ask with workspace/configuration; push once too, as VS Code does.
      notify_server(client, "workspace/didChangeConfiguration", { settings = settings_section() })
    end,
    on_exit = function(code, signal)
      if code ~= 0 then
        vim.schedule(function()
          notify(
            string.format(
              "the language server exited (code %s, signal %s). Is codemlm installed for %s? " .. INSTALL_HINT .. " See :LspLog",
              tostring(code),
              tostring(signal),
              M.config.cmd[1]
            ),
            vim.log.levels.ERROR
          )
        end)
      end
    end,
  }
end

-- Starts (or reuses) the client for the buffer's root and attaches the buffer.
function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  if vim.fn.executable(M.config.cmd[1]) ~= 1 then
    notify(
      string.format("%q is not executable: set cmd to a Python with codemlm. %s", M.config.cmd[1], INSTALL_HINT),
      vim.log.levels.ERROR
    )
    return nil
  end
  local root_dir = M.find_root(name, M.config.root_markers)
  if vim.lsp.start ~= nil then
    return vim.lsp.start(client_config(root_dir), { bufnr = bufnr })
  end
  local id = clients_by_root[root_dir]
  if id == nil or vim.lsp.get_client_by_id(id) == nil or vim.lsp.client_is_stopped(id) then
    id = vim.lsp.start_client(client_config(root_dir))
    if id == nil then
      notify("could not start " .. table.concat(M.config.cmd, " "), vim.log.levels.ERROR)
      return nil
    end
    clients_by_root[root_dir] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  return id
end

-- The codemlm client attached to the buffer, else any running codemlm client.
function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local attached
  if vim.lsp.get_clients ~= nil then
    attached = vim.lsp.get_clients({ bufnr = bufnr, name = SERVER_NAME })
  else
    attached = {}
    for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
      if client.name == SERVER_NAME then
        table.insert(attached, client)
      end
    end
  end
  if #attached > 0 then
    return attached[1]
  end
  local all = vim.lsp.get_clients ~= nil and vim.lsp.get_clients({ name = SERVER_NAME }) or vim.lsp.get_active_clients()
  for _, client in pairs(all) do
    if client.name == SERVER_NAME then
      return client
    end
  end
  return nil
end

-- workspace/executeCommand on the codemlm server; on_result(err, result).
function M.execute(command, arguments, on_result, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if client == nil then
    notify("no codemlm server is running for this buffer (open a supported file first)", vim.log.levels.ERROR)
    return false
  end
  request(client, "workspace/executeCommand", { command = command, arguments = arguments }, function(err, result)
    on_result(err, result)
  end, bufnr)
  return true
end

-- codemlm.search results -> quickfix items (1-based lines and columns, as Vim shows them).
function M.search_items(results)
  local items = {}
  for _, hit in ipairs(results or {}) do
    local snippet = (hit.snippet or ""):match("^%s*([^\n]*)") or ""
    table.insert(items, {
      filename = vim.uri_to_fname(hit.uri),
      lnum = hit.range.start.line + 1,
      col = hit.range.start.character + 1,
      text = string.format("[%s] %s: %s", hit.kind or "?", hit.name or "?", snippet),
      user_data = { score = hit.score, name = hit.name },
    })
  end
  return items
end

local function show_results(query, results)
  local items = M.search_items(results)
  if #items == 0 then
    notify(string.format("no results for %q", query))
    return
  end
  if M.config.search_ui == "select" then
    vim.ui.select(items, {
      prompt = "codemlm: " .. query,
      format_item = function(item)
        return string.format("%s:%d  %s", vim.fn.fnamemodify(item.filename, ":."), item.lnum, item.text)
      end,
    }, function(choice)
      if choice ~= nil then
        vim.cmd("edit " .. vim.fn.fnameescape(choice.filename))
        vim.api.nvim_win_set_cursor(0, { choice.lnum, choice.col - 1 })
      end
    end)
    return
  end
  vim.fn.setqflist({}, " ", { title = "codemlm: " .. query, items = items })
  vim.cmd("copen")
end

function M.search(query, k)
  if query == nil or vim.trim(query) == "" then
    notify("usage: :CodemlmSearch {query}", vim.log.levels.WARN)
    return
  end
  M.execute("codemlm.search", { { query = query, k = k or M.config.search_results } }, function(err, result)
    if err ~= nil then
      notify("search failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    show_results(query, result)
  end)
end

-- LSP position (UTF-16 character) of a 0-based byte column on a 1-based line.
local function lsp_position(bufnr, lnum, byte_col)
  local line = vim.api.nvim_buf_get_lines(bufnr, lnum - 1, lnum, false)[1] or ""
  byte_col = math.min(byte_col, #line)
  local utf16
  if has("nvim-0.11") then
    utf16 = vim.str_utfindex(line, "utf-16", byte_col, false)
  else
    local _
    _, utf16 = vim.str_utfindex(line, byte_col)
  end
  return { line = lnum - 1, character = utf16 }
end

-- The LSP range of lines/columns given by a command range or the last visual selection.
-- Linewise (V, or a :range from the command line) covers whole lines.
function M.selection_range(bufnr, line1, line2, mode)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  mode = mode or vim.fn.visualmode()
  local start_pos = vim.api.nvim_buf_get_mark(bufnr, "<")
  local end_pos = vim.api.nvim_buf_get_mark(bufnr, ">")
  local charwise = mode == "v" and line1 == start_pos[1] and line2 == end_pos[1]
  if not charwise then
    local last = vim.api.nvim_buf_get_lines(bufnr, line2 - 1, line2, false)[1] or ""
    return {
      start = { line = line1 - 1, character = 0 },
      ["end"] = lsp_position(bufnr, line2, #last),
    }
  end
  -- '> is the first byte of the last selected character: include all of its bytes.
  local last_line = vim.api.nvim_buf_get_lines(bufnr, end_pos[1] - 1, end_pos[1], false)[1] or ""
  local end_byte = end_pos[2]
  if end_byte < #last_line then
    local char = vim.fn.strcharpart(last_line:sub(end_byte + 1), 0, 1)
    end_byte = end_byte + math.max(#char, 1)
  end
  return {
    start = lsp_position(bufnr, start_pos[1], start_pos[2]),
    ["end"] = lsp_position(bufnr, end_pos[1], end_byte),
  }
end

-- Replaces the range with the model's best infill (the server applies it via workspace/applyEdit).
function M.fill_selection(line1, line2, on_done)
  local bufnr = vim.api.nvim_get_current_buf()
  local range = M.selection_range(bufnr, line1, line2)
  local args = { { uri = vim.uri_from_bufnr(bufnr), range = range } }
  M.execute("codemlm.fillSelection", args, function(err, result)
    if err ~= nil then
      notify("fill selection failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif type(result) ~= "table" or #result == 0 then
      notify("no candidate for this selection")
    else
      notify(string.format("filled with %q (score %.2f)", result[1].text, result[1].score or 0))
    end
    if on_done ~= nil then
      on_done(err, result)
    end
  end, bufnr)
end

function M.reindex()
  M.execute("codemlm.reindex", {}, function(err)
    if err ~= nil then
      notify("reindex failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    else
      notify("reindex started")
    end
  end)
end

-- For a statusline: "codemlm: ready", "codemlm: indexing", "codemlm: no-model", or "".
function M.statusline()
  if M.status == nil then
    return ""
  end
  return "codemlm: " .. M.status.state
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- Lists replace, not merge, in tbl_deep_extend's sense: a user's filetypes are the whole list.
  if opts ~= nil and opts.filetypes ~= nil then
    M.config.filetypes = opts.filetypes
  end
  if opts ~= nil and opts.cmd ~= nil then
    M.config.cmd = opts.cmd
  end

  local group = vim.api.nvim_create_augroup("codemlm", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
    desc = "codemlm: start/attach the language server",
  })

  vim.api.nvim_create_user_command("CodemlmSearch", function(args)
    M.search(args.args)
  end, { nargs = "+", desc = "codemlm: search the repository (results in the quickfix list)" })
  vim.api.nvim_create_user_command("CodemlmFillSelection", function(args)
    M.fill_selection(args.line1, args.line2)
  end, { range = true, desc = "codemlm: replace the selection with the model's infill" })
  vim.api.nvim_create_user_command("CodemlmReindex", function()
    M.reindex()
  end, { desc = "codemlm: rebuild the repository index" })
  vim.api.nvim_create_user_command("CodemlmStatus", function()
    print(M.status and (M.status.state .. ": " .. M.status.message) or "codemlm: no status yet")
  end, { desc = "codemlm: show the server's index status" })

  if M.config.keymaps and M.config.keymaps.fill_selection then
    -- `:` from visual mode inserts '<,'>, so the command gets the selection as its range.
    vim.keymap.set("x", M.config.keymaps.fill_selection, ":CodemlmFillSelection<CR>", {
      silent = true,
      desc = "codemlm: fill selection",
    })
  end

  -- Buffers already open when setup runs (e.g. lazy loading) get attached too.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      M.attach(bufnr)
    end
  end
end

return M
