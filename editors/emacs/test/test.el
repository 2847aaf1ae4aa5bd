;;; test.el --- batch test of codemlm.el against the real codemlm language server  -*- lexical-binding: t; -*-

;; emacs --batch -Q -l editors/emacs/test/test.el
;; Environment: CODEMLM_EMACS_PYTHON, CODEMLM_EMACS_WORKSPACE, CODEMLM_EMACS_FILE,
;; CODEMLM_EMACS_QUERY, CODEMLM_EMACS_OUT (JSON report), CODEMLM_EMACS_MODEL,
;; CODEMLM_EMACS_INDEX, CODEMLM_EMACS_TIMEOUT (seconds per step, default 60).
;; Exits 0 after writing the report, 1 after writing {"error": ...}.

;;; Code:

(require 'package)
;; -Q skips site-start, where Debian adds its system package directory (elpa-eglot lives there).
(when (file-directory-p "/usr/share/emacs/site-lisp/elpa")
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa"))
(package-initialize)
(add-to-list 'load-path (expand-file-name ".." (file-name-directory load-file-name)))
(require 'codemlm)
(require 'json)

(defvar codemlm-test-report nil "Alist written as JSON at the end.")
(defvar codemlm-test-statuses nil "States seen, oldest first.")

(defun codemlm-test--env (name &optional default)
  (let ((value (getenv name)))
    (if (or (null value) (string-empty-p value)) default value)))

(defun codemlm-test--put (key value)
  (push (cons key value) codemlm-test-report))

(defun codemlm-test--write ()
  (with-temp-file (codemlm-test--env "CODEMLM_EMACS_OUT")
    (insert (json-encode codemlm-test-report))))

(defun codemlm-test--wait (what predicate)
  (let ((deadline (+ (float-time) (string-to-number (codemlm-test--env "CODEMLM_EMACS_TIMEOUT" "60")))))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (unless (funcall predicate)
      (error "timed out waiting for %s" what))))

(cl-defmethod eglot-handle-notification :after
  ((_server codemlm-eglot-server) (_method (eql codemlm/status)) &key state &allow-other-keys)
  (setq codemlm-test-statuses (append codemlm-test-statuses (list state))))

(defun codemlm-test--run ()
  (let* ((workspace (file-name-as-directory (codemlm-test--env "CODEMLM_EMACS_WORKSPACE")))
         (file (expand-file-name (codemlm-test--env "CODEMLM_EMACS_FILE" "src/geometry/shapes.py") workspace))
         (query (codemlm-test--env "CODEMLM_EMACS_QUERY" "euclidean distance between two points")))
    (setq codemlm-python (codemlm-test--env "CODEMLM_EMACS_PYTHON"))
    (setq codemlm-settings (list :modelDir (codemlm-test--env "CODEMLM_EMACS_MODEL")
                                 :indexPath (codemlm-test--env "CODEMLM_EMACS_INDEX")))
    (codemlm-register)
    (setq project-list-file (make-temp-file "codemlm-projects"))
    (codemlm-test--put "eglot_library" (locate-library "eglot"))
    ;; The fixture is a copy without .git: make it a project by its root directory.
    (with-temp-file (expand-file-name ".project" workspace) (insert ""))
    (add-hook 'project-find-functions (lambda (_dir) (cons 'transient workspace)))
    (find-file file)
    (codemlm-test--put "major_mode" (symbol-name major-mode))
    ;; eglot-ensure waits for the next command, which never comes in batch mode: start it now.
    (apply #'eglot (eglot--guess-contact))
    (codemlm-test--wait "eglot to connect" (lambda () (eglot-current-server)))
    (let ((server (eglot-current-server)))
      (codemlm-test--put "server_class" (symbol-name (eieio-object-class server))))
    (codemlm-test--wait "codemlm/status ready or no-model"
                        (lambda () (member (plist-get codemlm-status :state) '("ready" "no-model"))))
    (codemlm-test--put "statuses" (vconcat codemlm-test-statuses))
    (codemlm-test--put "status" (plist-get codemlm-status :state))
    (codemlm-test--put "mode_line" (codemlm-mode-line))
    (codemlm-test--put "count" (codemlm-search query))
    (with-current-buffer "*codemlm-search*"
      (codemlm-test--put "search_mode" (symbol-name major-mode))
      (codemlm-test--put "search_buffer" (buffer-substring-no-properties (point-min) (point-max))))
    ;; Fill selection over the expression `math.hypot(x2 - x1, y2 - y1)` of line 11.
    (goto-char (point-min))
    (forward-line 10)
    (let* ((beg (progn (search-forward "return ") (point)))
           (end (line-end-position))
           (before (buffer-substring-no-properties (line-beginning-position) (line-end-position)))
           (candidates (codemlm-fill-selection beg end)))
      (codemlm-test--wait "the server's edit" (lambda () (not (equal before (buffer-substring-no-properties (line-beginning-position) (line-end-position))))))
      (codemlm-test--put "fill_before" before)
      (codemlm-test--put "fill_after" (buffer-substring-no-properties (line-beginning-position) (line-end-position)))
      (codemlm-test--put "fill_top" (plist-get (seq-first candidates) :text)))
    (codemlm-test--write)))

(condition-case err
    (progn
      (codemlm-test--run)
      (ignore-errors (eglot-shutdown-all))
      (kill-emacs 0))
  (error
   (codemlm-test--put "error" (error-message-string err))
   (codemlm-test--write)
   (kill-emacs 1)))
;;; test.el ends here
