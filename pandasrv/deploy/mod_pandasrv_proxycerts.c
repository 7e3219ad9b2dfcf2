/* Lets mod_ssl accept RFC 3820 and legacy grid proxy client certificates (the job mod_gridsite does for the
 * real PanDA server). OpenSSL 3 refuses proxy certificates unless the verification flag below is set on the
 * SSL context, and mod_ssl offers no directive for it; this module sets it on every server context through
 * mod_ssl's optional hook "init_server". Chains are still verified against SSLCACertificatePath and CRLs. */
#include "httpd.h"
#include "http_config.h"
#include "apr_optional_hooks.h"
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

static int allow_proxy_certs(server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx)
{
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_ALLOW_PROXY_CERTS);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    apr_optional_hook_add("init_server", (void (*)(void))allow_proxy_certs, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA pandasrv_proxycerts_module = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks
};
