;;; codemlm.el --- codemlm language server through eglot  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: languages, tools

;;; Commentary:

;; Masked-span completion and repository code search from the codemlm language server
;; (`python3 -m lsp_server').  codemlm is not on a package index: install it from a clone of
;; its repository, with `bash scripts/setup-env.sh' there (then set `codemlm-python' to the
;; clone's .venv/bin/python) or `python3 -m pip install -e /path/to/codemlm'.
;;
;;   (add-to-list 'load-path "/path/to/codemlm/editors/emacs")
;;   (require 'codemlm)
;;   (setq codemlm-python "/path/to/venv/bin/python")      ; a Python with codemlm
;;   (setq codemlm-settings '(:modelDir "~/models/codemlm-small" :maxCandidates 5))
;;   (codemlm-register)                                    ; eglot uses codemlm for its modes
;;   (add-hook 'python-mode-hook #'eglot-ensure)
;;
;; Completion goes through eglot (completion-at-point / company / corfu). Commands:
;;   M-x codemlm-search          query -> results in a grep-mode buffer (RET / next-error)
;;   M-x codemlm-fill-selection  replace the region with the model's infill (C-c m f below)
;;   M-x codemlm-reindex         rebuild the repository index
;; The mode line shows the index state from the server's `codemlm/status' notification.

;;; Code:

(require 'eglot)
(require 'jsonrpc)
(require 'grep)
(require 'cl-lib)

(defgroup codemlm nil
  "Masked-span completion and code search from the codemlm language server."
  :group 'tools
  :prefix "codemlm-")

(defcustom codemlm-python "python3"
  "Python interpreter that has codemlm installed.
From a clone of the codemlm repository: its .venv/bin/python after
`bash scripts/setup-env.sh', or a Python where you ran
`python3 -m pip install -e /path/to/codemlm'."
  :type 'string)

(defcustom codemlm-settings nil
  "The `codemlm' settings section (docs/INTERFACES.md), as a plist.
Keys: :modelDir :indexPath :maxCandidates :languages, and
:completion / :inlineCompletion as (:enabled t-or-:json-false)."
  :type 'plist)

(defcustom codemlm-major-modes
  '(python-mode python-ts-mode js-mode js-ts-mode typescript-mode typescript-ts-mode tsx-ts-mode
    go-mode go-ts-mode rust-mode rust-ts-mode java-mode java-ts-mode c-mode c-ts-mode
    c++-mode c++-ts-mode)
  "Major modes eglot starts codemlm for, after `codemlm-register'."
  :type '(repeat symbol))

(defcustom codemlm-search-results 20
  "How many results `codemlm-search' asks for."
  :type 'integer)

(defvar codemlm-status nil
  "The last `codemlm/status' notification: a plist (:state STRING :message STRING).")

(defclass codemlm-eglot-server (eglot-lsp-server) ()
  "Eglot server class for codemlm: sends its settings and handles its notifications.")

(defun codemlm--settings ()
  "The settings object under the `codemlm' key, as the server reads it."
  (list :codemlm (or codemlm-settings (make-hash-table))))

(cl-defmethod eglot-initialization-options ((_server codemlm-eglot-server))
  (codemlm--settings))

(cl-defmethod eglot-handle-notification
  ((_server codemlm-eglot-server) (_method (eql codemlm/status)) &key state message &allow-other-keys)
  (setq codemlm-status (list :state state :message message))
  (when (equal state "no-model")
    (message "codemlm: no model (%s); set :modelDir in `codemlm-settings' or $CODEMLM_MODEL" message))
  (force-mode-line-update t))

(defun codemlm--contact (_interactive)
  "The eglot contact for codemlm: a server class and a command line."
  (unless (executable-find codemlm-python)
    (user-error "codemlm: %s not found; set `codemlm-python' to a Python with codemlm (from a clone of its repository: bash scripts/setup-env.sh, then its .venv/bin/python)"
                codemlm-python))
  (list 'codemlm-eglot-server codemlm-python "-m" "lsp_server"))

;;;###autoload
(defun codemlm-register ()
  "Make eglot use codemlm for `codemlm-major-modes'."
  (add-to-list 'eglot-server-programs (cons codemlm-major-modes #'codemlm--contact))
  (add-to-list 'mode-line-misc-info '(:eval (codemlm-mode-line))))

(defun codemlm-mode-line ()
  "Mode line text for the index state, or nil before the first status."
  (when codemlm-status
    (format " codemlm:%s" (plist-get codemlm-status :state))))

(defun codemlm--server ()
  "The codemlm eglot server of this buffer, or an error that says what to do."
  (let ((server (eglot-current-server)))
    (unless (cl-typep server 'codemlm-eglot-server)
      (user-error "codemlm: no codemlm server for this buffer (M-x eglot, after `codemlm-register')"))
    server))

(defun codemlm--execute (command arguments)
  "Run the server's COMMAND with ARGUMENTS (a vector); return the result.
Sent as workspace/executeCommand to the codemlm server of this buffer."
  (jsonrpc-request (codemlm--server) :workspace/executeCommand
                   (list :command command :arguments arguments)))

(defun codemlm--uri-to-path (uri)
  (if (fboundp 'eglot-uri-to-path) (eglot-uri-to-path uri) (eglot--uri-to-path uri)))

(defun codemlm--path-to-uri (path)
  (if (fboundp 'eglot-path-to-uri) (eglot-path-to-uri path) (eglot--path-to-uri path)))

(defun codemlm--first-line (text)
  (car (split-string (string-trim (or text "")) "\n")))

;;;###autoload
(defun codemlm-search (query)
  "Search the repository for QUERY; show the results in a grep-mode buffer."
  (interactive "sSearch repository: ")
  (let* ((project (project-current))
         (root (if project (project-root project) default-directory))
         (results (codemlm--execute "codemlm.search"
                                    (vector (list :query query :k codemlm-search-results))))
         (buffer (get-buffer-create "*codemlm-search*")))
    (with-current-buffer buffer
      (let ((inhibit-read-only t))
        (erase-buffer)
        (setq default-directory root)
        (insert (format "codemlm search: %s\n\n" query))
        (seq-doseq (hit results)
          (let* ((start (plist-get (plist-get hit :range) :start))
                 (path (file-relative-name (codemlm--uri-to-path (plist-get hit :uri)) root)))
            (insert (format "%s:%d:%d: [%s] %s  %s\n" path
                            (1+ (plist-get start :line)) (1+ (plist-get start :character))
                            (plist-get hit :kind) (plist-get hit :name)
                            (codemlm--first-line (plist-get hit :snippet))))))
        (when (seq-empty-p results)
          (insert "no results\n")))
      (grep-mode)
      (goto-char (point-min)))
    (display-buffer buffer)
    (length results)))

(defun codemlm--lsp-position (pos)
  "LSP position of buffer position POS (eglot's UTF-16 columns)."
  (if (fboundp 'eglot--pos-to-lsp-position) (eglot--pos-to-lsp-position pos)
    (save-excursion (goto-char pos)
                    (list :line (1- (line-number-at-pos)) :character (eglot-current-column)))))

;;;###autoload
(defun codemlm-fill-selection (beg end)
  "Replace the region BEG..END with the model's infill.
The server computes the candidates and applies the best one itself."
  (interactive "r")
  (let* ((range (list :start (codemlm--lsp-position beg) :end (codemlm--lsp-position end)))
         ;; The user asked for this edit: do not make eglot ask again when the server sends it
         ;; (workspace/applyEdit arrives while this request waits, inside this binding).
         (eglot-confirm-server-initiated-edits nil)
         (candidates (codemlm--execute "codemlm.fillSelection"
                                       (vector (list :uri (codemlm--path-to-uri (buffer-file-name))
                                                     :range range)))))
    (if (seq-empty-p candidates)
        (message "codemlm: no candidate for this selection")
      (message "codemlm: filled with %S" (plist-get (seq-first candidates) :text)))
    candidates))

;;;###autoload
(defun codemlm-reindex ()
  "Ask the server to rebuild the repository index."
  (interactive)
  (codemlm--execute "codemlm.reindex" [])
  (message "codemlm: reindex started"))

(defvar codemlm-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map "s" #'codemlm-search)
    (define-key map "f" #'codemlm-fill-selection)
    (define-key map "r" #'codemlm-reindex)
    map)
  "Keymap for codemlm commands; bind it to a prefix, e.g.
  (global-set-key (kbd \"C-c m\") codemlm-command-map)")

(provide 'codemlm)
;;; codemlm.el ends here
