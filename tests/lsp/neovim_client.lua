-- Headless Neovim (0.7+) as a plain LSP client of codemlm-lsp: no plugin, only vim.lsp.
-- Starts the server, opens a file, waits for the index, asks for a completion at a hole and
-- for workspace symbols, and writes what it received to $CODEMLM_NVIM_OUT as JSON.
-- Run: nvim --headless -u NONE -c "luafile tests/lsp/neovim_client.lua"; exit status 0 = ran.

local out = os.getenv("CODEMLM_NVIM_OUT")
local report = { status = {}, messages = {} }

local function finish(code)
  local handle = io.open(out, "w")
  handle:write(vim.fn.json_encode(report))
  handle:close()
  vim.cmd("cquit " .. code)
end

local function first_result(responses, client_id)
  if responses == nil or responses[client_id] == nil then
    return nil
  end
  report.errors = report.errors or {}
  if responses[client_id].err ~= nil then
    table.insert(report.errors, tostring(responses[client_id].err.message))
  end
  return responses[client_id].result
end

local ok, err = pcall(function()
  local root = os.getenv("CODEMLM_NVIM_ROOT")
  local client_id = vim.lsp.start_client({
    name = "codemlm",
    cmd = { os.getenv("CODEMLM_NVIM_PYTHON"), "-m", "lsp_server" },
    root_dir = root,
    init_options = { modelDir = os.getenv("CODEMLM_NVIM_MODEL") },
    handlers = {
      ["codemlm/status"] = function(_, result)
        table.insert(report.status, result)
      end,
      ["window/showMessage"] = function(_, result)
        table.insert(report.messages, result.message)
      end,
    },
  })
  assert(client_id, "vim.lsp.start_client failed")
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/" .. os.getenv("CODEMLM_NVIM_FILE")))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.bo[bufnr].filetype = "python"
  vim.lsp.buf_attach_client(bufnr, client_id)

  report.ready = vim.wait(120000, function()
    for _, status in ipairs(report.status) do
      if status.state == "ready" then
        return true
      end
    end
    return false
  end, 100)

  local line = tonumber(os.getenv("CODEMLM_NVIM_LINE"))
  local character = tonumber(os.getenv("CODEMLM_NVIM_CHARACTER"))
  local completion = vim.lsp.buf_request_sync(bufnr, "textDocument/completion", {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = line, character = character },
  }, 60000)
  report.completion = first_result(completion, client_id)

  local symbols = vim.lsp.buf_request_sync(bufnr, "workspace/symbol", { query = "mul" }, 60000)
  report.symbols = first_result(symbols, client_id)

  vim.lsp.stop_client(client_id)
end)

if not ok then
  report.error = tostring(err)
  finish(1)
else
  finish(0)
end
