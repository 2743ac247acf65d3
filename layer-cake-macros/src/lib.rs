//! Derive macros for layer-cake (STUB).
use proc_macro::TokenStream;

/// Derives `layer_cake::Message` (STUB).
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let ast: syn::DeriveInput = syn::parse(input).expect("derive input");
    let name = &ast.ident;
    let text = name.to_string();
    quote::quote!(impl ::layer_cake::Message for #name { fn write_signature(out: &mut String) { out.push_str(#text) } }).into()
}
