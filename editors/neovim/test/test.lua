-- Headless end-to-end test of the codemlm Neovim plugin against the real language server.
--
--   CODEMLM_NVIM_PYTHON=/path/.venv/bin/python CODEMLM_NVIM_WORKSPACE=/tmp/repo \
--   CODEMLM_NVIM_FILE=src/geometry/shapes.py CODEMLM_NVIM_QUERY="euclidean distance" \
--   CODEMLM_NVIM_OUT=/tmp/out.json nvim --headless -u NONE -c "luafile editors/neovim/test/test.lua"
--
-- Optional: CODEMLM_NVIM_MODEL (settings.modelDir), CODEMLM_NVIM_INDEX (settings.indexPath);
-- without both, setup() gets no `settings` at all, as in a user's default setup.
-- CODEMLM_NVIM_FILL_LINE (1-based line to fill with :CodemlmFillSelection),
-- CODEMLM_NVIM_HOLE_FILE / _HOLE_LINE / _HOLE_CHARACTER (a file in the workspace and the 0-based
-- position of a hole to ask textDocument/completion at), CODEMLM_NVIM_TIMEOUT_MS (per step).
-- Writes what it saw as JSON to CODEMLM_NVIM_OUT (tests/test_editors_neovim.py checks it) and
-- exits 0, or 1 after writing {"error": ...} when a step fails or times out.

local out_path = assert(os.getenv("CODEMLM_NVIM_OUT"), "CODEMLM_NVIM_OUT is required")
local report = { nvim_version = tostring(vim.version().major .. "." .. vim.version().minor .. "." .. vim.version().patch) }

-- Everything the plugin tells the user, for the report.
report.notifications = {}
vim.notify = function(message)
  table.insert(report.notifications, message)
end

local function write_report()
  local file = assert(io.open(out_path, "w"))
  file:write(vim.fn.json_encode(report))
  file:close()
end

local function fail(message)
  report.error = message
  write_report()
  vim.cmd("cquit 1")
end

local function env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return default
  end
  return value
end

local timeout = tonumber(env("CODEMLM_NVIM_TIMEOUT_MS", "60000"))

-- What the server says to the user (window/showMessage) and into the log (window/logMessage):
-- Neovim 0.7 writes showMessage to the message area, not through vim.notify, so record both here.
report.server_messages = {}
for _, method in ipairs({ "window/showMessage", "window/logMessage" }) do
  local default_handler = vim.lsp.handlers[method]
  vim.lsp.handlers[method] = function(err, result, ctx, config)
    if type(result) == "table" and type(result.message) == "string" then
      table.insert(report.server_messages, { method = method, type = result.type, message = result.message })
    end
    if method == "window/logMessage" and default_handler ~= nil then
      return default_handler(err, result, ctx, config)
    end
    return vim.NIL
  end
end

local function wait_for(what, predicate)
  local ok = vim.wait(timeout, predicate, 50)
  if not ok then
    error("timed out after " .. timeout .. " ms waiting for " .. what, 0)
  end
end

local function run()
  -- The plugin from this checkout: editors/neovim is this file's grandparent directory.
  local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
  vim.opt.runtimepath:prepend(vim.fn.fnamemodify(here, ":h"))
  vim.cmd("filetype on") -- -u NONE leaves filetype detection off; FileType drives the plugin.

  local python = assert(os.getenv("CODEMLM_NVIM_PYTHON"), "CODEMLM_NVIM_PYTHON is required")
  local workspace = assert(os.getenv("CODEMLM_NVIM_WORKSPACE"), "CODEMLM_NVIM_WORKSPACE is required")
  local file = env("CODEMLM_NVIM_FILE", "src/geometry/shapes.py")
  local query = env("CODEMLM_NVIM_QUERY", "euclidean distance between two points")

  local codemlm = require("codemlm")
  local statuses = {}
  vim.api.nvim_create_autocmd("User", {
    pattern = "CodemlmStatus",
    callback = function()
      table.insert(statuses, codemlm.status.state)
    end,
  })
  local opts = { cmd = { python, "-m", "lsp_server" }, keymaps = { fill_selection = "<leader>cf" } }
  if os.getenv("CODEMLM_NVIM_MODEL") or os.getenv("CODEMLM_NVIM_INDEX") then
    opts.settings = { modelDir = os.getenv("CODEMLM_NVIM_MODEL"), indexPath = os.getenv("CODEMLM_NVIM_INDEX") }
  end
  codemlm.setup(opts)
  -- The settings object as it goes on the wire (JSON), for the setup above and for tables a user
  -- may leave empty: objects must stay objects, lists lists.
  report.settings_json = vim.fn.json_encode(codemlm.settings_section())
  local configured = codemlm.config.settings
  codemlm.config.settings = { completion = {}, inlineCompletion = { enabled = false }, languages = {} }
  report.settings_json_nested = vim.fn.json_encode(codemlm.settings_section())
  codemlm.config.settings = configured
  report.commands = {
    search = vim.fn.exists(":CodemlmSearch") == 2,
    fill = vim.fn.exists(":CodemlmFillSelection") == 2,
    reindex = vim.fn.exists(":CodemlmReindex") == 2,
  }
  report.keymap = vim.fn.maparg("<leader>cf", "x") ~= ""

  vim.cmd("cd " .. vim.fn.fnameescape(workspace))
  vim.cmd("edit " .. vim.fn.fnameescape(workspace .. "/" .. file))
  report.filetype = vim.bo.filetype

  wait_for("the server to initialize", function()
    local client = codemlm.client()
    return client ~= nil and client.server_capabilities ~= nil and not vim.tbl_isempty(client.server_capabilities)
  end)
  local client = codemlm.client()
  report.client_name = client.name
  report.root_dir = client.config.root_dir
  report.attached = vim.lsp.buf_is_attached(0, client.id)
  local commands = (client.server_capabilities.executeCommandProvider or {}).commands or {}
  report.server_commands = commands

  wait_for("codemlm/status ready", function()
    return codemlm.status ~= nil and (codemlm.status.state == "ready" or codemlm.status.state == "no-model")
  end)
  report.statuses = statuses
  report.status = codemlm.status
  report.statusline = codemlm.statusline()
  if codemlm.status.state ~= "ready" then
    error("server reported " .. codemlm.status.state .. ": " .. codemlm.status.message, 0)
  end

  -- :CodemlmSearch fills the quickfix list.
  vim.cmd("CodemlmSearch " .. query)
  wait_for("quickfix results", function()
    return #vim.fn.getqflist() > 0
  end)
  local qf = vim.fn.getqflist({ title = 1, items = 1 })
  report.quickfix_title = qf.title
  report.quickfix = {}
  for _, item in ipairs(qf.items) do
    table.insert(report.quickfix, {
      path = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(item.bufnr), ":p"):sub(#workspace + 2),
      lnum = item.lnum,
      col = item.col,
      text = item.text,
    })
  end
  vim.cmd("cclose")

  -- search_ui = "select": the same hits through vim.ui.select (here a stand-in that picks the
  -- first row, as a user pressing <CR> would), which opens the file at the hit.
  codemlm.config.search_ui = "select"
  local shown = nil
  vim.ui.select = function(items, opts, on_choice)
    shown = { prompt = opts.prompt, first = opts.format_item(items[1]), count = #items }
    on_choice(items[1])
  end
  vim.cmd("CodemlmSearch " .. query)
  wait_for("vim.ui.select", function()
    return shown ~= nil
  end)
  report.select = shown
  report.select_opened = {
    path = vim.api.nvim_buf_get_name(0):sub(#workspace + 2),
    line = vim.api.nvim_win_get_cursor(0)[1],
  }
  codemlm.config.search_ui = "quickfix"

  -- :CodemlmReindex: the server reindexes and reports ready again.
  local seen = #statuses
  vim.cmd("CodemlmReindex")
  wait_for("ready after :CodemlmReindex", function()
    return #statuses > seen and statuses[#statuses] == "ready"
  end)
  report.statuses_after_reindex = vim.list_slice(statuses, seen + 1)

  -- Standard completion through the same client, at a hole the model knows the answer to: the
  -- buffer is opened like any file (FileType attaches it to the running client).
  local hole_file = os.getenv("CODEMLM_NVIM_HOLE_FILE")
  if hole_file ~= nil then
    vim.cmd("edit " .. vim.fn.fnameescape(workspace .. "/" .. hole_file))
    local hole_buf = vim.api.nvim_get_current_buf()
    wait_for("the hole file to attach", function()
      return vim.lsp.buf_is_attached(hole_buf, client.id)
    end)
    local responses = vim.lsp.buf_request_sync(hole_buf, "textDocument/completion", {
      textDocument = { uri = vim.uri_from_bufnr(hole_buf) },
      position = { line = tonumber(env("CODEMLM_NVIM_HOLE_LINE", "0")), character = tonumber(env("CODEMLM_NVIM_HOLE_CHARACTER", "0")) },
    }, timeout)
    local completion = { labels = {}, texts = {} }
    for _, response in pairs(responses or {}) do
      if response.err ~= nil then
        completion.error = response.err.message or vim.inspect(response.err)
      end
      local result = response.result or {}
      for _, item in ipairs(result.items or result) do
        table.insert(completion.labels, item.label)
        table.insert(completion.texts, (item.textEdit and item.textEdit.newText) or item.insertText or item.label)
      end
    end
    report.completion = completion
  end

  local source_buf = vim.fn.bufnr(workspace .. "/" .. file)
  vim.api.nvim_set_current_buf(source_buf)
  local fill_line = tonumber(env("CODEMLM_NVIM_FILL_LINE", "0"))
  if fill_line > 0 then
    local before = vim.api.nvim_buf_get_lines(source_buf, fill_line - 1, fill_line, false)[1]

    -- Fill a characterwise Visual selection: from the word after `return ` to the end of the line.
    vim.api.nvim_win_set_cursor(0, { fill_line, 0 })
    vim.cmd("normal! ^wv$\27")
    report.visual = { mode = vim.fn.visualmode(), start = vim.fn.getpos("'<")[3], finish = vim.fn.getpos("'>")[3] }
    local done, fill_result, fill_err = false, nil, nil
    codemlm.fill_selection(fill_line, fill_line, function(err, result)
      fill_err, fill_result, done = err, result, true
    end)
    wait_for("fillSelection", function()
      return done
    end)
    -- The server applies the top candidate with workspace/applyEdit; give that a moment to land.
    vim.wait(2000, function()
      return vim.api.nvim_buf_get_lines(source_buf, fill_line - 1, fill_line, false)[1] ~= before
    end, 50)
    report.fill = {
      error = fill_err and (fill_err.message or vim.inspect(fill_err)) or vim.NIL,
      candidates = fill_result or {},
      line_before = before,
      line_after = vim.api.nvim_buf_get_lines(source_buf, fill_line - 1, fill_line, false)[1],
    }
  end
  write_report()
end

local ok, err = xpcall(run, debug.traceback)
if not ok then
  fail(tostring(err))
else
  -- Stop the server politely so it does not outlive the editor.
  local get_clients = vim.lsp.get_clients or vim.lsp.get_active_clients
  for _, client in pairs(get_clients()) do
    if vim.fn.has("nvim-0.11") == 1 then
      client:stop()
    else
      client.stop()
    end
  end
  vim.wait(3000, function()
    return #get_clients() == 0
  end, 50)
  vim.cmd("qall!")
end
